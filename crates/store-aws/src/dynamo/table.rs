//! The table's definition as data ([`TABLE`]): what [`DynamoStore::create_table`] creates
//! for local runs and tests, and what `infra/template.yaml` declares on AWS (its `Table`
//! resource). A test reads the template and fails when the two differ.

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::DynamoStore;

/// A key schema: attribute names with their roles, partition key first.
type KeySpec = &'static [(&'static str, KeyType)];

/// A DynamoDB table: its keys, the attributes they use, its global secondary indexes, its
/// billing mode and its TTL attribute.
#[derive(Debug)]
pub(crate) struct TableSpec {
    /// Every attribute a key of the table or of an index uses, with its type.
    pub(crate) attributes: &'static [(&'static str, ScalarAttributeType)],
    /// The table's key.
    pub(crate) key_schema: KeySpec,
    /// The global secondary indexes.
    pub(crate) indexes: &'static [IndexSpec],
    /// How the table is billed.
    pub(crate) billing_mode: BillingMode,
    /// The attribute whose time (Unix seconds) lets DynamoDB delete an item.
    pub(crate) ttl_attribute: &'static str,
}

/// A global secondary index.
#[derive(Debug)]
pub(crate) struct IndexSpec {
    /// Its name.
    pub(crate) name: &'static str,
    /// Its key.
    pub(crate) key_schema: KeySpec,
    /// Which attributes it copies.
    pub(crate) projection: ProjectionType,
}

/// The store's one table (see the crate docs, "DynamoDB design"): `pk`/`sk`; `by_zone` on
/// `zpk` (keys only, for counts); `by_batch` on `bpk`/`bsk` (every attribute, for batch
/// reports); `by_institution` on `ipk`/`isk` (every attribute, for an institution's import
/// report, newest first); on demand; locks expire through `expires_at`.
pub(crate) static TABLE: TableSpec = TableSpec {
    attributes: &[
        ("pk", ScalarAttributeType::S),
        ("sk", ScalarAttributeType::S),
        ("zpk", ScalarAttributeType::S),
        ("bpk", ScalarAttributeType::S),
        ("bsk", ScalarAttributeType::N),
        ("ipk", ScalarAttributeType::S),
        ("isk", ScalarAttributeType::S),
    ],
    key_schema: &[("pk", KeyType::Hash), ("sk", KeyType::Range)],
    indexes: &[
        IndexSpec {
            name: "by_zone",
            key_schema: &[("zpk", KeyType::Hash)],
            projection: ProjectionType::KeysOnly,
        },
        IndexSpec {
            name: "by_batch",
            key_schema: &[("bpk", KeyType::Hash), ("bsk", KeyType::Range)],
            projection: ProjectionType::All,
        },
        IndexSpec {
            name: "by_institution",
            key_schema: &[("ipk", KeyType::Hash), ("isk", KeyType::Range)],
            projection: ProjectionType::All,
        },
    ],
    billing_mode: BillingMode::PayPerRequest,
    ttl_attribute: "expires_at",
};

impl TableSpec {
    /// The attribute definitions of a `CreateTable` request.
    pub(crate) fn attribute_definitions(&self) -> Result<Vec<AttributeDefinition>, BuildError> {
        self.attributes
            .iter()
            .map(|(name, kind)| {
                AttributeDefinition::builder()
                    .attribute_name(*name)
                    .attribute_type(kind.clone())
                    .build()
            })
            .collect()
    }

    /// The table's key schema of a `CreateTable` request.
    pub(crate) fn key_schema(&self) -> Result<Vec<KeySchemaElement>, BuildError> {
        key_schema(self.key_schema)
    }

    /// The global secondary indexes of a `CreateTable` request.
    pub(crate) fn global_secondary_indexes(&self) -> Result<Vec<GlobalSecondaryIndex>, BuildError> {
        self.indexes
            .iter()
            .map(|index| {
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(index.key_schema)?))
                    .projection(
                        Projection::builder()
                            .projection_type(index.projection.clone())
                            .build(),
                    )
                    .build()
            })
            .collect()
    }

    /// The `UpdateTimeToLive` specification that turns the TTL attribute on.
    pub(crate) fn time_to_live(&self) -> Result<TimeToLiveSpecification, BuildError> {
        TimeToLiveSpecification::builder()
            .attribute_name(self.ttl_attribute)
            .enabled(true)
            .build()
    }
}

fn key_schema(spec: KeySpec) -> Result<Vec<KeySchemaElement>, BuildError> {
    spec.iter()
        .map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(*name)
                .key_type(kind.clone())
                .build()
        })
        .collect()
}

impl DynamoStore {
    /// Creates the table with the documented keys and indexes, on-demand billing, and the
    /// TTL attribute (for local runs and tests; on AWS `infra/template.yaml` does).
    pub fn create_table(&self) -> crate::Result<()> {
        let provision = |message: String| crate::Error::Provision {
            what: format!("table {:?}", self.table),
            message,
        };
        let built = (|| -> Result<_, BuildError> {
            Ok((
                TABLE.attribute_definitions()?,
                TABLE.key_schema()?,
                TABLE.global_secondary_indexes()?,
            ))
        })();
        let (attributes, keys, indexes) = built.map_err(|err| provision(err.to_string()))?;
        self.context
            .block_on(async {
                self.client
                    .create_table()
                    .table_name(&self.table)
                    .set_attribute_definitions(Some(attributes))
                    .set_key_schema(Some(keys))
                    .set_global_secondary_indexes(Some(indexes))
                    .billing_mode(TABLE.billing_mode.clone())
                    .send()
                    .await
            })
            .map_err(|err| provision(DisplayErrorContext(&err).to_string()))?;
        let ttl = TABLE
            .time_to_live()
            .map_err(|err| provision(err.to_string()))?;
        self.context
            .block_on(async {
                self.client
                    .update_time_to_live()
                    .table_name(&self.table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
            })
            .map_err(|err| provision(DisplayErrorContext(&err).to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
