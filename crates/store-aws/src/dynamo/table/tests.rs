//! The table [`TABLE`] describes (and `create_table` creates) is the one
//! `infra/template.yaml` declares in its `Table` resource.
//!
//! The template is read with `yaml-rust2`, which loads CloudFormation's tags (`!Sub`,
//! `!Ref`, `!GetAtt`, `!If`) by dropping the tag and keeping the value as written
//! ([`tags_are_dropped_and_values_kept`]). So an intrinsic function in one of the compared
//! properties reads as its arguments, never as the literal the code has, and the comparison
//! fails: these properties must be literals.

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

use super::TABLE;

/// The parts of a table that `CreateTable` and `UpdateTimeToLive` set, comparable.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    /// (name, type), sorted by name: DynamoDB takes them in any order.
    attributes: Vec<(String, String)>,
    /// (name, `HASH` or `RANGE`), in order.
    key_schema: Vec<(String, String)>,
    /// Sorted by name.
    indexes: Vec<IndexShape>,
    billing_mode: String,
    /// (attribute, enabled).
    time_to_live: (String, bool),
}

#[derive(Debug, PartialEq, Eq)]
struct IndexShape {
    name: String,
    key_schema: Vec<(String, String)>,
    projection_type: String,
    /// Only for an `INCLUDE` projection.
    non_key_attributes: Vec<String>,
}

/// What `create_table` sends, read back from the same SDK values it builds.
fn code_shape() -> Shape {
    let mut attributes: Vec<(String, String)> = TABLE
        .attribute_definitions()
        .unwrap()
        .iter()
        .map(|attribute| {
            (
                attribute.attribute_name().to_owned(),
                attribute.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    attributes.sort();
    let key_pairs = |elements: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        elements
            .iter()
            .map(|element| {
                (
                    element.attribute_name().to_owned(),
                    element.key_type().as_str().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut indexes: Vec<IndexShape> = TABLE
        .global_secondary_indexes()
        .unwrap()
        .iter()
        .map(|index| {
            let projection = index.projection();
            IndexShape {
                name: index.index_name().to_owned(),
                key_schema: key_pairs(index.key_schema()),
                projection_type: projection
                    .and_then(|projection| projection.projection_type())
                    .map_or("(none)", |kind| kind.as_str())
                    .to_owned(),
                non_key_attributes: projection
                    .map(|projection| projection.non_key_attributes().to_vec())
                    .unwrap_or_default(),
            }
        })
        .collect();
    indexes.sort_by(|left, right| left.name.cmp(&right.name));
    let ttl = TABLE.time_to_live().unwrap();
    Shape {
        attributes,
        key_schema: key_pairs(&TABLE.key_schema().unwrap()),
        indexes,
        billing_mode: TABLE.billing_mode.as_str().to_owned(),
        time_to_live: (ttl.attribute_name().to_owned(), ttl.enabled()),
    }
}

fn template_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml")
}

/// The template, parsed.
fn template() -> Yaml {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("could not read {}: {err}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("could not parse {} as yaml: {err}", path.display()));
    assert_eq!(docs.len(), 1, "{} holds one document", path.display());
    docs.remove(0)
}

/// The value under `key` of the mapping `node` (at `at`, for errors).
fn field<'a>(node: &'a Yaml, key: &str, at: &str) -> Result<&'a Yaml, String> {
    match &node[key] {
        Yaml::BadValue => Err(format!("{at}: no {key:?}")),
        value => Ok(value),
    }
}

fn text(node: &Yaml, key: &str, at: &str) -> Result<String, String> {
    let value = field(node, key, at)?;
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{at}.{key}: {value:?} is not a plain string"))
}

fn list<'a>(node: &'a Yaml, key: &str, at: &str) -> Result<&'a [Yaml], String> {
    let value = field(node, key, at)?;
    value
        .as_vec()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{at}.{key}: {value:?} is not a list"))
}

fn key_schema(node: &Yaml, at: &str) -> Result<Vec<(String, String)>, String> {
    list(node, "KeySchema", at)?
        .iter()
        .enumerate()
        .map(|(element_idx, element)| {
            let at = format!("{at}.KeySchema[{element_idx}]");
            Ok((
                text(element, "AttributeName", &at)?,
                text(element, "KeyType", &at)?,
            ))
        })
        .collect()
}

/// The `Table` resource of a parsed template.
fn template_shape(template: &Yaml) -> Result<Shape, String> {
    let table = field(
        field(template, "Resources", "template")?,
        "Table",
        "Resources",
    )?;
    let kind = text(table, "Type", "Table")?;
    if kind != "AWS::DynamoDB::Table" {
        return Err(format!("Table is a {kind:?}, not an AWS::DynamoDB::Table"));
    }
    let at = "Table.Properties";
    let properties = field(table, "Properties", "Table")?;
    let mut attributes = list(properties, "AttributeDefinitions", at)?
        .iter()
        .enumerate()
        .map(|(attribute_idx, attribute)| {
            let at = format!("{at}.AttributeDefinitions[{attribute_idx}]");
            Ok((
                text(attribute, "AttributeName", &at)?,
                text(attribute, "AttributeType", &at)?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    attributes.sort();
    let mut indexes = list(properties, "GlobalSecondaryIndexes", at)?
        .iter()
        .enumerate()
        .map(|(index_idx, index)| {
            let at = format!("{at}.GlobalSecondaryIndexes[{index_idx}]");
            let projection = field(index, "Projection", &at)?;
            let projection_at = format!("{at}.Projection");
            let non_key_attributes = match &projection["NonKeyAttributes"] {
                Yaml::BadValue => Vec::new(),
                _ => list(projection, "NonKeyAttributes", &projection_at)?
                    .iter()
                    .map(|name| {
                        name.as_str().map(str::to_owned).ok_or_else(|| {
                            format!("{projection_at}.NonKeyAttributes: {name:?} is not a string")
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            };
            Ok(IndexShape {
                name: text(index, "IndexName", &at)?,
                key_schema: key_schema(index, &at)?,
                projection_type: text(projection, "ProjectionType", &projection_at)?,
                non_key_attributes,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    indexes.sort_by(|left, right| left.name.cmp(&right.name));
    let ttl_at = format!("{at}.TimeToLiveSpecification");
    let ttl = field(properties, "TimeToLiveSpecification", at)?;
    let enabled = field(ttl, "Enabled", &ttl_at)?;
    let enabled = enabled
        .as_bool()
        .ok_or_else(|| format!("{ttl_at}.Enabled: {enabled:?} is not a boolean"))?;
    Ok(Shape {
        attributes,
        key_schema: key_schema(properties, at)?,
        indexes,
        billing_mode: text(properties, "BillingMode", at)?,
        time_to_live: (text(ttl, "AttributeName", &ttl_at)?, enabled),
    })
}

#[test]
fn the_created_table_is_the_one_the_template_declares() {
    let declared = template_shape(&template())
        .unwrap_or_else(|err| panic!("{}: {err}", template_path().display()));
    assert_eq!(
        code_shape(),
        declared,
        "the table create_table makes (left, dynamo/table.rs) differs from the Table resource \
         of {} (right)",
        template_path().display()
    );
}

#[test]
fn the_spec_is_what_the_crate_docs_describe() {
    let shape = code_shape();
    assert_eq!(
        shape.key_schema,
        [("pk".into(), "HASH".into()), ("sk".into(), "RANGE".into())]
    );
    assert_eq!(shape.billing_mode, "PAY_PER_REQUEST");
    assert_eq!(shape.time_to_live, ("expires_at".into(), true));
    let names: Vec<&str> = shape
        .indexes
        .iter()
        .map(|index| index.name.as_str())
        .collect();
    assert_eq!(names, ["by_batch", "by_institution", "by_zone"]);
    // Every key attribute has a definition, and every definition is a key attribute.
    let keys: Vec<&(&str, _)> = TABLE
        .key_schema
        .iter()
        .chain(
            TABLE
                .indexes
                .iter()
                .flat_map(|index| index.key_schema.iter()),
        )
        .collect();
    let mut key_names: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
    key_names.sort_unstable();
    key_names.dedup();
    let mut defined: Vec<&str> = TABLE.attributes.iter().map(|(name, _)| *name).collect();
    defined.sort_unstable();
    assert_eq!(key_names, defined);
}

/// A named change to the `Table` resource of a parsed template.
type Change = (&'static str, fn(&mut Yaml));

/// Each change of a compared property, made to the parsed template, makes the comparison
/// fail: the test above would catch it.
#[test]
fn a_changed_template_is_seen() {
    let code = code_shape();
    let changes: [Change; 9] = [
        ("a projection type", |table| {
            table["Properties"]["GlobalSecondaryIndexes"][0]["Projection"]["ProjectionType"] =
                Yaml::String("INCLUDE".into());
        }),
        ("non-key attributes", |table| {
            let projection = &mut table["Properties"]["GlobalSecondaryIndexes"][1]["Projection"];
            projection.as_mut_hash().unwrap().insert(
                Yaml::String("NonKeyAttributes".into()),
                Yaml::Array(vec![Yaml::String("zone".into())]),
            );
        }),
        ("an index key", |table| {
            table["Properties"]["GlobalSecondaryIndexes"][1]["KeySchema"][1]["KeyType"] =
                Yaml::String("HASH".into());
        }),
        ("an index name", |table| {
            table["Properties"]["GlobalSecondaryIndexes"][0]["IndexName"] =
                Yaml::String("by_institution".into());
        }),
        ("an attribute type", |table| {
            let attributes = table["Properties"]["AttributeDefinitions"]
                .as_mut_vec()
                .unwrap();
            for attribute in attributes {
                if attribute["AttributeName"].as_str() == Some("bsk") {
                    attribute["AttributeType"] = Yaml::String("S".into());
                }
            }
        }),
        ("a missing attribute definition", |table| {
            table["Properties"]["AttributeDefinitions"]
                .as_mut_vec()
                .unwrap()
                .pop();
        }),
        ("the table's key", |table| {
            table["Properties"]["KeySchema"]
                .as_mut_vec()
                .unwrap()
                .reverse();
        }),
        ("the billing mode", |table| {
            table["Properties"]["BillingMode"] = Yaml::String("PROVISIONED".into());
        }),
        ("the ttl attribute", |table| {
            table["Properties"]["TimeToLiveSpecification"]["AttributeName"] =
                Yaml::String("expires".into());
        }),
    ];
    let original = template();
    assert_eq!(template_shape(&original).as_ref(), Ok(&code));
    for (change, apply) in changes {
        let mut changed = original.clone();
        apply(&mut changed["Resources"]["Table"]);
        assert_ne!(
            template_shape(&changed).as_ref(),
            Ok(&code),
            "changing {change} in the template went unnoticed"
        );
    }
}

/// What the YAML reader does with CloudFormation's tags, which the template uses.
#[test]
fn tags_are_dropped_and_values_kept() {
    let docs = YamlLoader::load_from_str(
        "name: !Sub bibgate-${Environment}\n\
         arn: !GetAtt Table.Arn\n\
         table: !Ref Table\n\
         protect: !If [IsProd, true, false]\n\
         kind: KEYS_ONLY\n",
    )
    .unwrap();
    let doc = &docs[0];
    assert_eq!(doc["name"].as_str(), Some("bibgate-${Environment}"));
    assert_eq!(doc["arn"].as_str(), Some("Table.Arn"));
    assert_eq!(doc["table"].as_str(), Some("Table"));
    assert_eq!(
        doc["protect"].as_vec().map(Vec::len),
        Some(3),
        "{:?}",
        doc["protect"]
    );
    assert_eq!(doc["kind"].as_str(), Some("KEYS_ONLY"));
}
