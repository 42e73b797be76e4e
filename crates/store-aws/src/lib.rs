//! Bibgate's AWS storage adapter: the [`Store`](bibgate_store::Store) port on DynamoDB and
//! the [`BlobStore`](bibgate_store::BlobStore) port on S3.
//!
//! This is the only crate of the workspace that depends on `aws-sdk-*`. Main types:
//!
//! - [`AwsContext`]: the SDK configuration (loaded once, from the standard environment:
//!   credentials, region, `AWS_ENDPOINT_URL*`) and the small tokio runtime the synchronous
//!   ports run their requests on.
//! - [`DynamoStore`]: records, versions, the per-zone OCLC index, locks, profiles,
//!   institutions, results and MMS ID counters in **one** DynamoDB table.
//! - [`S3BlobStore`]: blobs as S3 objects of one bucket, key for key.
//!
//! Both pass the generic contract suite of `bibgate-store` against moto
//! (`tests/contract.rs`).
//!
//! # Sync ports over an async SDK
//!
//! The ports are synchronous (the embedded adapter is, and async callers run them on a
//! blocking thread). [`AwsContext`] owns a 2-worker multi-thread tokio runtime; each port
//! method runs its SDK calls with `Runtime::block_on`. `block_on` may be called from many
//! threads at once (each drives its own future; connections and timers run on the
//! runtime's workers), so the adapters are safe to use from `spawn_blocking` threads and
//! from plain threads. A call made from inside an async task (where `block_on` would
//! panic) is moved to a scoped helper thread, so a misuse costs a thread, not a panic.
//! Dropping the context shuts the runtime down in the background, which is allowed
//! anywhere, also inside async code.
//!
//! # Endpoints
//!
//! Endpoints come only from the SDK configuration: `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3` or the profile. When an S3 endpoint
//! URL is configured (a local emulator, or an S3-compatible store), S3 requests use
//! path-style addressing (`http://host/bucket/key`), since such endpoints have no
//! per-bucket DNS names; without one, the SDK's virtual-hosted default applies. There is no
//! other difference between a local run and AWS.
//!
//! # DynamoDB design (one table)
//!
//! Keys are strings: partition key `pk`, sort key `sk`. Two global secondary indexes:
//! `by_zone` (partition `zpk`, keys only; present on current records only: counts) and
//! `by_batch` (partition `bpk`, sort `bsk` number, all attributes; present on results of a
//! batch only), `by_institution` (partition `ipk` = institution, sort `isk` =
//! `<received, 20 digits>#<index, 20 digits>#<export id>`, all attributes; on every result
//! written since it was added: an institution's import report, Query descending).
//! TTL attribute: `expires_at` (locks only).
//! The table's definition is data (`src/dynamo/table.rs`), from which
//! [`DynamoStore::create_table`] builds its request; on AWS the `Table` resource of
//! `infra/template.yaml` creates the table, and a unit test fails when the two differ.
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | institution | `INST` | code | `name`, `kind`, `network`, `numeric_code` |
//! | profile | `PROFILE#<institution>` | id | every [`Profile`](bibgate_store::Profile) field |
//! | profile pointer | `PROFILEID#<id>` | `-` | `institution` (whose partition holds the id) |
//! | MMS ID counter | `COUNTER#<zone>` | `-` | `allocated` (N, atomic `ADD`) |
//! | current record | `REC#<zone>#<mms>` | `CUR` | `zpk`=zone, `marc` (B) or `marc_ref` (S3 key), `revision`, `ov`, `brief`, `cz`, `created`, `updated`, `keys` (the key list of [`encode_index_keys`](bibgate_store::encode_index_keys), `123:a 456:c`) |
//! | prior version | `REC#<zone>#<mms>` | `V#<revision, 20 digits>` | `marc`/`marc_ref`, `revision`, `ov`, `brief`, `saved`, `replaced`, `replaced_by`, `reason` |
//! | OCLC index | `OCLC#<zone>#<number>` | `-` | `recs` (map MMS ID → active), `ver` (N, +1 per change) |
//! | editor lock | `LOCK#<zone>#<mms>` | `-` | `institution`, `user`, `since`, `left`, `expires_at` |
//! | search term | `TERM#<zone>#<term>` | MMS ID | none: one item per current record with the term (`isbn:…`, `title:…`; the record item lists its `terms`) |
//! | result | `RESULT#<export id>` | `-` | every [`ImportResult`](bibgate_store::ImportResult) field; `bpk`=batch, `bsk`=index; `ipk`=institution, `isk`=received#index#export id |
//! | staff account | `STAFF` | user name | `institution`, `admin` (N 0/1), `password_hash` (argon2), `created_unix` |
//!
//! Access patterns:
//!
//! - `institutions`: Query `pk = INST` (sorted by code). `institution`: GetItem.
//! - `profiles(inst)`: Query `pk = PROFILE#<inst>` (what every import's routing reads: one
//!   small partition). `put_profile`/`delete_profile` keep the profile and its pointer in
//!   one transaction, so a profile moved to another institution leaves no stale copy.
//! - `allocate_mms_id(s)`: GetItem of the institution (its numeric code, cached per
//!   process), then one UpdateItem `ADD allocated :n` on the zone's counter, returning the
//!   new value: `count` ids in one write, never reused, increasing.
//! - `find_by_oclc`: BatchGetItem (consistent) of the zone's index items for the numbers.
//! - `record`, `lock`, `result`: GetItem (consistent). `versions`: Query
//!   `pk = REC#..`, `sk begins_with V#` (oldest first by the zero-padded revision).
//! - `count_records`: Query `by_zone` with `Select=COUNT`; `batch_results`: Query
//!   `by_batch`, ascending `bsk`. **Both read a GSI, which is eventually consistent on AWS**
//!   (moto answers at once): an admin count or a batch report read right after a commit may
//!   miss it for a moment. Nothing that decides an import reads a GSI.
//! - `find_by_term`: Query `pk = TERM#<zone>#<term>` (consistent; MMS ID order). The
//!   term items change in the same `TransactWriteItems` as their record (puts of new
//!   terms, deletes of gone ones: an import that adds a record writes about a dozen more
//!   items; a merge that keeps the title, none).
//! - `institution_results`: Query `by_institution`, `isk >= <since, 20 digits>`,
//!   descending, `Limit` pages until enough (also eventually consistent).
//! - `commit`: one `TransactWriteItems` (below); a `ReplaceMany` (a staff merge) puts
//!   each record and its prior version and changes each touched index item once, all in one
//!   `TransactWriteItems` with the same revision and `ver` conditions.
//! - `commit_batch`: each commit atomic on its own, as the port promises ("each succeeds
//!   or fails on its own"), several in flight at once (at most
//!   [`DynamoStore::with_commit_concurrency`], default 16). The batch is split into groups
//!   of commits that share no OCLC number, MMS ID or export id; a group is applied in batch
//!   order (so a commit sees the ones before it that it could conflict with, and a batch
//!   ends as it would one commit after another), the groups concurrently. A crash
//!   mid-batch leaves some commits applied, which the importer's per-export idempotency
//!   makes harmless.
//! - `lookup_many` (what a batch import reads before deciding): one round of
//!   `BatchGetItem` for the index items of every number of the batch, one for the current
//!   items and locks of every record they name (100 keys per request), instead of a
//!   `lookup` per record.
//!
//! ## Commit: the expectation as conditional writes
//!
//! One index item per (zone, OCLC number) holds the *set* of records indexed under that
//! number and a version counter `ver`. A commit:
//!
//! 1. reads (consistent) the index items of every number it touches: the expectation's
//!    numbers, the new record's numbers and, for a merge or replace, the numbers the
//!    current record had (read with the record, which must be at `expected_revision`);
//! 2. checks the union of the sets under the expectation's numbers equals
//!    `expect.matched`, else [`Conflict`](bibgate_store::Error::Conflict);
//! 3. writes in one transaction: the record (`attribute_not_exists` for an add,
//!    `revision = :expected` for a merge or replace), the prior version (`attribute_not_exists`),
//!    the result (`attribute_not_exists`: an export id has at most one result), and every
//!    touched index item as its new full set with `ver + 1`, each **conditioned on the `ver`
//!    read in step 1** (or on its absence); an index item that is only expected, not
//!    changed, gets a `ConditionCheck` on its `ver`. An index item whose set becomes empty is
//!    deleted under the same condition.
//!
//! So if anything the decision was based on changed between the read and the write, some
//! condition fails and the whole transaction is cancelled: two Lambdas adding the same new
//! OCLC number both condition on "no index item", exactly one transaction succeeds and the
//! other gets [`Conflict`](bibgate_store::Error::Conflict) and decides again (a merge). A
//! cancelled transaction is mapped by its cancellation reasons: the result's condition →
//! [`AlreadyExists`](bibgate_store::Error::AlreadyExists) (a retried export), an add's
//! record condition → `AlreadyExists` (MMS ID taken), anything else (including
//! `TransactionConflict`) → `Conflict`.
//!
//! A transaction holds at most 100 actions: a record with *n* distinct OCLC numbers (plus
//! those of its prior state) needs 3 + *n* actions, so a record touching more than 97
//! numbers is refused with [`Backend`](bibgate_store::Error::Backend) before anything is
//! written (never a partial write). Real records have a handful (001, 035 `$a`/`$z`, 019).
//! Each transaction carries a fresh `ClientRequestToken`, so an SDK retry after a lost
//! response is idempotent on DynamoDB.
//!
//! ## Large MARC
//!
//! An item is at most 400 KB. A record's (or version's) MARC longer than
//! [`INLINE_MARC_LIMIT`] goes to S3 under `marc/<zone>/<mms>/<revision>.mrc` (written
//! before the transaction; immutable, so a version keeps pointing at its revision's object)
//! and the item holds `marc_ref`. This needs [`DynamoStore::with_marc_bucket`]; without it
//! such a record is refused. A transaction whose objects were written but which then failed
//! leaves an unreferenced object (harmless; a lifecycle rule may expire `marc/` orphans
//! only if it checks references, so none is configured).
//!
//! ## Locks
//!
//! The engine decides whether a lock has expired (`left_unix` plus the profile's timeout),
//! so the store returns locks whether expired or not. `expires_at` (the table's TTL
//! attribute) is only garbage collection: `left_unix` + 30 days for a lock whose holder
//! left the editor, none for an open one; DynamoDB deletes expired items lazily, which is
//! harmless because nothing reads `expires_at`.
//!
//! ## Concurrency
//!
//! Transactions are sent as they come, from any number of threads: DynamoDB applies each
//! atomically and the conditions above decide between racing processes (a loser gets
//! `Conflict` and decides again). moto's `TransactWriteItems` is not thread-safe
//! (concurrent calls can fail with HTTP 500), so the *test double* is made to behave like
//! DynamoDB instead: `scripts/moto_server.py` serves DynamoDB requests one at a time. The
//! tests race many threads through read → decide → commit, so the conditions are
//! exercised; what they do not exercise is DynamoDB's own server-side isolation, which is
//! AWS's guarantee.
//!
//! # Invariants
//!
//! - Ports speak domain types and `bibgate_store::Error` only; no SDK type leaks out.
//! - A failed commit writes nothing to the table (at most an unreferenced S3 object).
//! - The stored revision is set here: 1 on Add, `expected_revision + 1` on Merge/Replace.
//! - No credentials in logs or errors (errors quote table, bucket, key and the SDK's
//!   error code and message).
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod bounded;
mod context;
mod dynamo;
mod error;
#[cfg(feature = "sqs")]
mod queue;
mod s3;
#[cfg(feature = "test-support")]
pub mod testing;

pub use context::AwsContext;
pub use dynamo::{
    DEFAULT_COMMIT_CONCURRENCY, DynamoLogonLocks, DynamoPolicyStore, DynamoStore, INLINE_MARC_LIMIT,
};
pub use error::{Error, Result};
#[cfg(feature = "sqs")]
pub use queue::{QueueMessage, SqsQueue};
pub use s3::S3BlobStore;
