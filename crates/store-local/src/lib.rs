//! Bibgate's embedded storage adapter: the [`Store`](bibgate_store::Store) port on SQLite
//! and the [`BlobStore`](bibgate_store::BlobStore) port on a local folder.
//!
//! This is what the CLI and the gateway use when they run on one machine: one database file
//! (plus its `-wal` and `-shm` companions) and one folder of blobs. Main types:
//!
//! - [`SqliteStore`]: records, prior versions, the per-zone OCLC index, locks, profiles,
//!   institutions and import results in one SQLite database ([`SqliteStore::open`]), or in
//!   memory for tests ([`SqliteStore::in_memory`]).
//! - [`FolderBlobStore`]: blobs as files under a root folder, key `a/b/c` at `<root>/a/b/c`.
//!
//! Both pass the generic contract suite of `bibgate-store` (`tests/contract.rs`).
//!
//! # Schema (version 1, tracked by `PRAGMA user_version`)
//!
//! | table | key | columns |
//! |---|---|---|
//! | `institutions` | `code` | `name`, `kind` (`network`/`institution`), `network`, `numeric_code` |
//! | `profiles` | `id` | `institution` (indexed), every [`Profile`](bibgate_store::Profile) field; `target_zone` as `iz`/`nz` |
//! | `counters` | `zone` | `next_serial`: the serial the next [`allocate_mms_id`](bibgate_store::Store::allocate_mms_id) hands out (from 1000000) |
//! | `records` | `(zone, mms_id)` | `marc` (BLOB), `revision`, `originating_version`, `brief_level`, `cz` (linked to the Community Zone), `created_unix`, `updated_unix`, `keys` (the record's OCLC keys in order, as the key list of [`encode_index_keys`](bibgate_store::encode_index_keys), `123:a 456:c`) |
//! | `versions` | `(zone, mms_id, revision)` → `records` | `marc`, `originating_version`, `brief_level`, `saved_unix`, `replaced_unix`, `replaced_by`, `reason` |
//! | `oclc_index` | `(zone, number, mms_id)` → `records`, indexed on `(zone, mms_id)` | `active` (0/1) |
//! | `locks` | `(zone, mms_id)` | `institution`, `user`, `since_unix`, `left_unix` |
//! | `results` | `export_id`, indexed on `(batch_id, idx)` | every [`ImportResult`](bibgate_store::ImportResult) field; `oclc_numbers` as space-separated decimals, `trace` as lines each ended by `\n` (with `\` and newlines inside a line escaped as `\\` and `\n`) |
//!
//! Schema v3 adds the merge-policy tables of [`SqlitePolicyStore`] (`policy_manifests`,
//! `policy_activations`, `policy_config`). Schema v4 adds
//! `previous_password_hash` and `previous_password_expires` to `profiles` (password
//! rotation; `NULL` in migrated rows).
//!
//! Every migration is in `src/sqlite/schema.rs`, numbered; `tests/fixtures/schema-v<N>.sqlite`
//! holds a database of each schema version, which a test migrates and reads back. A
//! database with a newer `user_version` than this build knows is refused with
//! [`Error::Corrupt`](bibgate_store::Error::Corrupt) before anything is written to it,
//! rather than misread or changed.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL`: every committed transaction is
//! fsynced to the write-ahead log before [`Store::commit`](bibgate_store::Store::commit)
//! (or any other write) returns, so a result reported to a sender is never lost in a crash
//! or power failure. A transaction that had not returned is rolled back as a whole on
//! recovery. [`FolderBlobStore`] writes a temporary file, fsyncs it, moves it into place
//! atomically and fsyncs the folder, so readers see the old bytes or the new, never a part.
//!
//! # Concurrency
//!
//! [`SqliteStore`] is `Send + Sync`. All writes in this process go through one writer
//! connection behind a mutex, each in a `BEGIN IMMEDIATE` transaction, so they are
//! serialised here and, through SQLite's write lock and a 5 s busy timeout, against other
//! processes that open the same file. Reads of a file database use a small pool of
//! read-only connections and, thanks to WAL, never wait for the writer; each read is one
//! statement, hence one consistent snapshot. An in-memory store has a single connection
//! that serves reads and writes.
//!
//! # Invariants
//!
//! - A commit's expectation is checked inside the same write transaction as its writes, so
//!   two imports of the same new OCLC number can never both add a record.
//! - A commit with an export id that was already stored fails with
//!   [`Error::AlreadyExists`](bibgate_store::Error::AlreadyExists) and writes nothing, which
//!   makes retries idempotent.
//! - The stored revision is set by the store: 1 on Add, `expected_revision + 1` on Merge and
//!   Replace, whatever the given record says.
//! - An MMS ID serial is committed before it is returned, so it is never reused.
//! - Must not depend on any other Bibgate crate than `bibgate-store`, nor on async runtimes
//!   or cloud SDKs.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod folder;
mod policy;
mod sqlite;

pub use folder::{FolderBlobStore, create_private_dir_all};
pub use policy::SqlitePolicyStore;
pub use sqlite::{Check, SqliteStore};
