//! The [`PolicyStore`] port on the same DynamoDB table and S3 bucket as the records.
//!
//! | item | `pk` / `sk` | attributes |
//! |---|---|---|
//! | manifest | `POLICY` / sha256 | the [`PolicyManifest`] (one partition: a consortium has a handful) |
//! | derived artifact | `POLICYART#<sha256>` / name | `digest` (sha256 of its bytes), `key` (its S3 object) |
//! | activation | `POLICYPTR#<institution>` / `R#<revision:020>` | sha256, name, config, on_error, who, when |
//!
//! Components are in S3 under `policies/sha256/<hex>/policy.wasm` (their digest is their
//! name, checked by the host before admission). Derived artifacts (precompiled code, which
//! wasmtime loads without checking it) are in S3 under `policies/sha256/<hex>/<digest>-<name>`
//! and their digest is kept in the item: [`DynamoPolicyStore::derived`] refuses bytes whose
//! sha256 is not the recorded one, so an object swapped in the bucket is never loaded.
//! Each put of a derived artifact writes a new object named by its digest and then the item,
//! so two writers racing never leave an item naming the other's bytes.
//!
//! Activation is a compare-and-swap without a transaction: the latest revision is read, must
//! be the caller's `expected`, and the next revision's item is put on the condition that it
//! does not exist yet; whoever loses the race gets [`Error::Conflict`].

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use bibgate_store::policy::{
    Activation, ConfigValue, NewActivation, OnError, PolicyManifest, artifact_key, derived_key,
    is_sha256_hex,
};
use bibgate_store::{BlobStore, Error, PolicyStore, Result};
use sha2::{Digest, Sha256};
use tracing::instrument;

use super::items::{Item, get_n, get_s, key, n, s};
use super::{DynamoStore, sdk_error};
use crate::context::AwsContext;
use crate::s3::S3BlobStore;

const MANIFESTS: &str = "POLICY";

fn derived_pk(sha256: &str) -> String {
    format!("POLICYART#{sha256}")
}

fn pointer_pk(institution: &str) -> String {
    format!("POLICYPTR#{institution}")
}

fn revision_sk(revision: u64) -> String {
    format!("R#{revision:020}")
}

/// sha256 of `bytes`, lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_sha(sha256: &str) -> Result<()> {
    if is_sha256_hex(sha256) {
        Ok(())
    } else {
        Err(Error::NotFound(format!("policy {sha256:?} (not a sha256)")))
    }
}

fn manifest_item(manifest: &PolicyManifest) -> Item {
    let mut item = key(MANIFESTS.to_owned(), &manifest.sha256);
    item.extend([
        ("name".to_owned(), s(&manifest.name)),
        ("version".to_owned(), s(&manifest.version)),
        ("abi".to_owned(), s(&manifest.abi)),
        ("size".to_owned(), n(manifest.size)),
        ("fuel".to_owned(), n(manifest.fuel)),
        ("memory_bytes".to_owned(), n(manifest.memory_bytes)),
        ("description".to_owned(), s(&manifest.description)),
        ("published_by".to_owned(), s(&manifest.published_by)),
        ("published_unix".to_owned(), n(manifest.published_unix)),
    ]);
    item
}

fn manifest_from(item: &Item) -> Result<PolicyManifest> {
    Ok(PolicyManifest {
        sha256: get_s(item, "sk")?,
        name: get_s(item, "name")?,
        version: get_s(item, "version")?,
        abi: get_s(item, "abi")?,
        size: get_n(item, "size")?,
        fuel: get_n(item, "fuel")?,
        memory_bytes: get_n(item, "memory_bytes")?,
        description: get_s(item, "description")?,
        published_by: get_s(item, "published_by")?,
        published_unix: get_n(item, "published_unix")?,
    })
}

fn activation_item(activation: &Activation) -> Item {
    let mut item = key(
        pointer_pk(&activation.institution),
        &revision_sk(activation.revision),
    );
    let config = activation
        .config
        .iter()
        .map(|(name, value)| AttributeValue::L(vec![s(name), s(value.encode())]))
        .collect();
    item.extend([
        ("institution".to_owned(), s(&activation.institution)),
        ("revision".to_owned(), n(activation.revision)),
        ("name".to_owned(), s(&activation.name)),
        ("sha256".to_owned(), s(&activation.sha256)),
        ("config".to_owned(), AttributeValue::L(config)),
        ("on_error".to_owned(), s(activation.on_error.as_str())),
        ("activated_by".to_owned(), s(&activation.activated_by)),
        ("activated_unix".to_owned(), n(activation.activated_unix)),
    ]);
    item
}

fn activation_from(item: &Item) -> Result<Activation> {
    let on_error = get_s(item, "on_error")?;
    let on_error = OnError::parse(&on_error)
        .ok_or_else(|| Error::Corrupt(format!("policy failure setting {on_error:?}")))?;
    let unreadable = || Error::Corrupt("a policy activation's config is not readable".to_owned());
    let config = match item.get("config") {
        Some(AttributeValue::L(entries)) => entries
            .iter()
            .map(|entry| match entry {
                AttributeValue::L(pair) => match pair.as_slice() {
                    [AttributeValue::S(name), AttributeValue::S(value)] => {
                        Ok((name.clone(), ConfigValue::decode(value)?))
                    }
                    _ => Err(unreadable()),
                },
                _ => Err(unreadable()),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(unreadable()),
    };
    Ok(Activation {
        institution: get_s(item, "institution")?,
        revision: get_n(item, "revision")?,
        name: get_s(item, "name")?,
        sha256: get_s(item, "sha256")?,
        config,
        on_error,
        activated_by: get_s(item, "activated_by")?,
        activated_unix: get_n(item, "activated_unix")?,
    })
}

fn is_condition_failure(err: &SdkError<PutItemError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(PutItemError::ConditionalCheckFailedException(_))
    )
}

/// The [`PolicyStore`] port on a DynamoDB table and an S3 bucket (see the module docs).
#[derive(Debug)]
pub struct DynamoPolicyStore {
    table: DynamoStore,
    bucket: S3BlobStore,
}

impl DynamoPolicyStore {
    /// Policies in `table`, their bytes in `bucket`.
    pub fn new(context: &AwsContext, table: &str, bucket: S3BlobStore) -> DynamoPolicyStore {
        DynamoPolicyStore {
            table: DynamoStore::new(context, table),
            bucket,
        }
    }

    fn block_on<F>(&self, future: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        self.table.context.block_on(future)
    }

    /// The latest activation of `institution` (consistent).
    async fn latest(&self, institution: &str) -> Result<Option<Activation>> {
        let what = format!("read the active policy of {institution:?}");
        let page = self
            .table
            .client
            .query()
            .table_name(&self.table.table)
            .consistent_read(true)
            .key_condition_expression("#p = :p AND begins_with(#s, :s)")
            .expression_attribute_names("#p", "pk")
            .expression_attribute_names("#s", "sk")
            .expression_attribute_values(":p", s(pointer_pk(institution)))
            .expression_attribute_values(":s", s("R#"))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|err| sdk_error(&what, &err))?;
        page.items().first().map(activation_from).transpose()
    }

    async fn put_new(&self, item: Item, what: &str) -> Result<bool> {
        let put = self
            .table
            .client
            .put_item()
            .table_name(&self.table.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(err) if is_condition_failure(&err) => Ok(false),
            Err(err) => Err(sdk_error(what, &err)),
        }
    }
}

impl PolicyStore for DynamoPolicyStore {
    #[instrument(name = "dynamo.policy.publish", skip_all, fields(sha256 = %manifest.sha256), err)]
    fn publish(&self, manifest: &PolicyManifest, component: &[u8]) -> Result<bool> {
        check_sha(&manifest.sha256)?;
        if self.manifest(&manifest.sha256)?.is_some() {
            return Ok(false);
        }
        // Bytes first: a manifest never names bytes that are not there.
        self.bucket
            .put(&artifact_key(&manifest.sha256), component)?;
        let what = format!("publish policy {}", manifest.sha256);
        self.block_on(self.put_new(manifest_item(manifest), &what))
    }

    #[instrument(name = "dynamo.policy.manifest", skip(self), err)]
    fn manifest(&self, sha256: &str) -> Result<Option<PolicyManifest>> {
        if !is_sha256_hex(sha256) {
            return Ok(None);
        }
        let what = format!("read policy {sha256}");
        self.block_on(
            self.table
                .get_item(key(MANIFESTS.to_owned(), sha256), &what),
        )?
        .as_ref()
        .map(manifest_from)
        .transpose()
    }

    #[instrument(name = "dynamo.policy.published", skip(self), err)]
    fn published(&self) -> Result<Vec<PolicyManifest>> {
        let items = self.block_on(self.table.query_partition(
            MANIFESTS,
            None,
            "list the published policies",
        ))?;
        let mut manifests = items
            .iter()
            .map(manifest_from)
            .collect::<Result<Vec<_>>>()?;
        manifests.sort_by(|a, b| {
            (a.published_unix, &a.name, &a.sha256).cmp(&(b.published_unix, &b.name, &b.sha256))
        });
        Ok(manifests)
    }

    #[instrument(name = "dynamo.policy.artifact", skip(self), err)]
    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        if !is_sha256_hex(sha256) || self.manifest(sha256)?.is_none() {
            return Ok(None);
        }
        self.bucket.get(&artifact_key(sha256))
    }

    #[instrument(name = "dynamo.policy.put_derived", skip(self, bytes), err)]
    fn put_derived(&self, sha256: &str, name: &str, bytes: &[u8]) -> Result<()> {
        check_sha(sha256)?;
        let digest = sha256_hex(bytes);
        let object = derived_key(sha256, &format!("{digest}-{name}"));
        self.bucket.put(&object, bytes)?;
        let mut item = key(derived_pk(sha256), name);
        item.extend([
            ("digest".to_owned(), s(&digest)),
            ("key".to_owned(), s(&object)),
            ("size".to_owned(), n(bytes.len())),
        ]);
        let what = format!("record the derived artifact {name:?} of policy {sha256}");
        self.block_on(self.table.put_item(item, &what))
    }

    #[instrument(name = "dynamo.policy.derived", skip(self), err)]
    fn derived(&self, sha256: &str, name: &str) -> Result<Option<Vec<u8>>> {
        if !is_sha256_hex(sha256) {
            return Ok(None);
        }
        let what = format!("read the derived artifact {name:?} of policy {sha256}");
        let Some(item) =
            self.block_on(self.table.get_item(key(derived_pk(sha256), name), &what))?
        else {
            return Ok(None);
        };
        let digest = get_s(&item, "digest")?;
        let object = get_s(&item, "key")?;
        let Some(bytes) = self.bucket.get(&object)? else {
            return Ok(None);
        };
        let found = sha256_hex(&bytes);
        if found != digest {
            return Err(Error::Corrupt(format!(
                "the derived artifact {object:?} has sha256 {found}, not the {digest} recorded when it was written: refused"
            )));
        }
        Ok(Some(bytes))
    }

    #[instrument(name = "dynamo.policy.activate", skip_all, fields(institution = %activation.institution), err)]
    fn activate(&self, activation: &NewActivation, expected: u64) -> Result<Activation> {
        let manifest = self
            .manifest(&activation.sha256)?
            .ok_or_else(|| Error::NotFound(format!("published policy {}", activation.sha256)))?;
        let institution = &activation.institution;
        let current = self
            .block_on(self.latest(institution))?
            .map_or(0, |a| a.revision);
        let conflict = || {
            Error::Conflict(format!(
                "{institution}'s policy pointer moved: it is no longer at revision {expected}"
            ))
        };
        if current != expected {
            return Err(conflict());
        }
        let activated = Activation {
            institution: institution.clone(),
            revision: expected + 1,
            name: manifest.name,
            sha256: activation.sha256.clone(),
            config: activation.config.clone(),
            on_error: activation.on_error,
            activated_by: activation.activated_by.clone(),
            activated_unix: activation.activated_unix,
        };
        let what = format!("activate policy {} for {institution}", activation.sha256);
        if self.block_on(self.put_new(activation_item(&activated), &what))? {
            Ok(activated)
        } else {
            Err(conflict())
        }
    }

    #[instrument(name = "dynamo.policy.active", skip(self), err)]
    fn active(&self, institution: &str) -> Result<Option<Activation>> {
        self.block_on(self.latest(institution))
    }

    #[instrument(name = "dynamo.policy.history", skip(self), err)]
    fn history(&self, institution: &str) -> Result<Vec<Activation>> {
        let items = self.block_on(self.table.query_partition(
            &pointer_pk(institution),
            Some("R#"),
            &format!("read the policy history of {institution:?}"),
        ))?;
        items.iter().map(activation_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_round_trip_through_items() {
        let activation = Activation {
            institution: "01A".into(),
            revision: 7,
            name: "no-005-check".into(),
            sha256: "a".repeat(64),
            config: vec![
                ("tags".into(), ConfigValue::Texts(vec!["590".into()])),
                ("n".into(), ConfigValue::Int(3)),
            ],
            on_error: OnError::Hold,
            activated_by: "admin".into(),
            activated_unix: 1_800_000_000,
        };
        let item = activation_item(&activation);
        assert_eq!(get_s(&item, "sk").unwrap(), "R#00000000000000000007");
        assert_eq!(activation_from(&item).unwrap(), activation);
        let mut broken = item.clone();
        broken.insert("config".into(), s("x"));
        assert!(matches!(activation_from(&broken), Err(Error::Corrupt(_))));
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
