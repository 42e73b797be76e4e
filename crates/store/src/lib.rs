//! Bibgate's domain model and storage ports.
//!
//! The import engine decides; this crate says what is kept and how it is asked for. Two
//! ports, each implemented by an adapter crate and chosen at one composition root per binary:
//!
//! - [`Store`]: institutions, integration profiles, bibliographic records with every prior
//!   version, the per-zone OCLC index, editor locks, import results. Its one write for an
//!   import, [`Store::commit`], is atomic and checks the expectation the decision was based
//!   on, so two imports of the same new OCLC number can never both add a record.
//! - [`BlobStore`]: raw bytes by key (the inbox, drop folders, results documents, reports).
//!
//! The contract suite in [`contract`] (feature `test-support`) is the definition of both
//! ports' behaviour: every adapter runs it.
//!
//! Both adapters keep a record's OCLC keys with it as one text value, the key list
//! `123:a 456:c`, written by [`encode_index_keys`] and read by [`parse_index_keys`].
//!
//! # Invariants
//!
//! - Ports speak domain types and [`Error`], never an adapter's own types.
//! - Nothing here does I/O; adapters do.
//! - An MMS ID is never reused, even when a commit that allocated it fails.
#![deny(missing_docs)]

#[cfg(feature = "test-support")]
pub mod contract;
#[cfg(feature = "test-support")]
pub mod contract_policy;
mod error;
mod key_list;
pub mod logon;
mod model;
pub mod policy;
pub mod search;

pub use error::{Error, Result};
pub use key_list::{BadIndexKey, encode_index_keys, parse_index_keys};
pub use logon::{BlobLogonLocks, LogonLock, LogonLocks};
pub use model::*;
pub use policy::PolicyStore;

/// Institutions, profiles, records, versions, the OCLC index, locks and results.
///
/// Methods are synchronous: the embedded adapter is synchronous, and async callers run
/// them on a blocking thread.
pub trait Store: Send + Sync {
    /// Creates or replaces an institution (or a network zone).
    fn put_institution(&self, institution: &Institution) -> Result<()>;
    /// Every institution and network zone, by code.
    fn institutions(&self) -> Result<Vec<Institution>>;
    /// One institution by code.
    fn institution(&self, code: &str) -> Result<Option<Institution>>;

    /// Creates or replaces an integration profile (keyed by its id).
    fn put_profile(&self, profile: &Profile) -> Result<()>;
    /// Removes a profile; false when there was none.
    fn delete_profile(&self, id: &str) -> Result<bool>;
    /// The profiles of one institution.
    fn profiles(&self, institution: &str) -> Result<Vec<Profile>>;

    /// Allocates a new MMS ID in a zone; never returns the same id twice.
    fn allocate_mms_id(&self, zone: &str) -> Result<MmsId>;

    /// Allocates `count` new MMS IDs at once (adapters make this one write).
    fn allocate_mms_ids(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        (0..count).map(|_| self.allocate_mms_id(zone)).collect()
    }

    /// Every index entry of the zone for any of `numbers`.
    fn find_by_oclc(&self, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>>;
    /// A record's current state.
    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>>;

    /// What a decision reads, from one consistent state: the index entries for `numbers`,
    /// the records they name and those records' locks. Adapters that can read a snapshot
    /// override this; the default reads each piece on its own.
    fn lookup(&self, zone: &str, numbers: &[u64]) -> Result<Lookup> {
        let entries = self.find_by_oclc(zone, numbers)?;
        let mut ids: Vec<&MmsId> = entries.iter().map(|e| &e.mms_id).collect();
        ids.sort();
        ids.dedup();
        let mut records = Vec::with_capacity(ids.len());
        let mut locks = Vec::new();
        for id in ids {
            if let Some(record) = self.record(zone, id)? {
                records.push(record);
            }
            if let Some(lock) = self.lock(zone, id)? {
                locks.push(lock);
            }
        }
        Ok(Lookup {
            entries,
            records,
            locks,
        })
    }
    /// [`Store::lookup`] for many records at once (one entry per set of numbers, in order),
    /// as a batch import needs. Each [`Lookup`] is consistent on its own; adapters that can
    /// read one snapshot for all of them override this to save a read per record.
    fn lookup_many(&self, zone: &str, sets: &[&[u64]]) -> Result<Vec<Lookup>> {
        sets.iter()
            .map(|numbers| self.lookup(zone, numbers))
            .collect()
    }

    /// A record's prior versions, oldest first (the current state is not among them).
    fn versions(&self, zone: &str, mms_id: &MmsId) -> Result<Vec<RecordVersion>>;
    /// How many records a zone holds.
    fn count_records(&self, zone: &str) -> Result<u64>;
    /// A page of a zone's records (current ones, withdrawn included): at most `limit` MMS
    /// IDs, in an order the adapter chooses and keeps (SQLite: MMS ID order; DynamoDB: the
    /// `by_zone` GSI's), starting after `after` (the last MMS ID of the previous page). Every
    /// record is on exactly one page while the zone does not change.
    fn list_records(&self, zone: &str, after: Option<&MmsId>, limit: usize) -> Result<Vec<MmsId>>;
    /// The current records of a zone with a search term ([`search`]: `isbn:…`, `title:…`),
    /// in MMS ID order, at most `limit`. Adapters keep each record's
    /// [`search::record_terms`] in the same write as the record.
    fn find_by_term(&self, zone: &str, term: &str, limit: usize) -> Result<Vec<MmsId>>;
    /// The OCLC numbers that two or more records of `zone` carry (active or cancelled), in
    /// number order, each with its index entries in MMS ID order: the records an export of
    /// that number would find as a multi-match. Reads the zone's whole index: a staff report,
    /// never on an import's path.
    fn duplicates(&self, zone: &str) -> Result<Vec<(u64, Vec<IndexEntry>)>>;

    /// Applies the writes of one import (or restore) atomically, after checking that the
    /// state the decision was based on still holds. On [`Error::Conflict`] nothing was
    /// written and the caller decides again.
    fn commit(&self, commit: &Commit) -> Result<()>;
    /// Applies several commits in one durable transaction; each succeeds or fails on its
    /// own (a conflict in one does not undo the others). Results are in input order.
    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>>;

    /// Puts or replaces a lock.
    fn put_lock(&self, lock: &EditorLock) -> Result<()>;
    /// Removes a record's lock; false when there was none.
    fn release_lock(&self, zone: &str, mms_id: &MmsId) -> Result<bool>;
    /// A record's lock, whether expired or not (the engine decides).
    fn lock(&self, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>>;
    /// Every lock of `zone`, expired or not, in MMS ID order. Reads all the zone's locks: a
    /// staff report (`bibgate editor list`), never on an import's path.
    fn locks(&self, zone: &str) -> Result<Vec<EditorLock>>;

    /// A stored import result.
    fn result(&self, export_id: &str) -> Result<Option<ImportResult>>;
    /// The results of a batch, in record order.
    fn batch_results(&self, batch_id: &str) -> Result<Vec<ImportResult>>;
    /// The results of an institution's records received at or after `since_unix`, newest
    /// first (received time, then position in its batch, then export id, all descending),
    /// at most `limit` of them: the institution's import report. Read from an index on
    /// institution and received time (on DynamoDB a GSI, eventually consistent); never on
    /// an import's path.
    fn institution_results(
        &self,
        institution: &str,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<ImportResult>>;

    /// Adds a staff account of the console; [`Error::AlreadyExists`] when the user name is
    /// taken (nothing is replaced).
    fn add_staff(&self, account: &StaffAccount) -> Result<()>;
    /// One staff account by user name.
    fn staff(&self, user: &str) -> Result<Option<StaffAccount>>;
    /// Every staff account, by user name.
    fn staff_list(&self) -> Result<Vec<StaffAccount>>;
    /// Removes a staff account; false when there was none.
    fn remove_staff(&self, user: &str) -> Result<bool>;
}

/// An entry that [`BlobStore::set_aside_non_blobs`] moved aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// Its name as it was, made readable (not UTF-8 bytes replaced).
    pub name: String,
    /// The key of the folder entry it is now (not a blob: a link stays a link).
    pub key: String,
    /// Why it is not a blob.
    pub why: String,
}

/// The error of a `put_stream*` whose source failed: [`Error::NotFound`] when the source
/// says a piece of it is gone (`io::ErrorKind::NotFound`), else [`Error::Backend`].
pub fn stream_error(key: &str, err: &std::io::Error) -> Error {
    let message = format!("could not read the bytes of {key:?}: {err}");
    if err.kind() == std::io::ErrorKind::NotFound {
        Error::NotFound(message)
    } else {
        Error::Backend(message)
    }
}

/// Copies `source` into `sink` in 64 KiB pieces; returns how many bytes. A failure of the
/// source (not of the sink) is kept in `failed`, so adapters can tell the two apart (a
/// source's is [`stream_error`]).
pub fn copy_from(
    source: &mut dyn std::io::Read,
    sink: &mut dyn std::io::Write,
    failed: &mut Option<std::io::Error>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                let kind = err.kind();
                *failed = Some(err);
                return Err(std::io::Error::new(kind, "the source of the bytes failed"));
            }
        };
        sink.write_all(&buf[..n])?;
        copied += n as u64;
    }
}

/// Raw bytes by key: the object-store port (a local folder by default, S3 on AWS).
///
/// Keys are `/`-separated paths such as `inbox/01DEMO_ALPHA/<export-id>.mrc`.
pub trait BlobStore: Send + Sync {
    /// Stores bytes under a key, replacing what was there. Durable when it returns.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Stores bytes only if the key is free; false when it already existed.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool>;
    /// The bytes under a key.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Keys under a prefix, in lexical order.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Removes a key; false when there was none.
    fn delete(&self, key: &str) -> Result<bool>;

    /// Removes every key of `keys` (those that are free are no error). The default deletes
    /// them one by one; the S3 adapter sends `DeleteObjects` of up to 1,000 keys.
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            self.delete(key)?;
        }
        Ok(())
    }

    /// [`BlobStore::put`] of the bytes `source` yields until it ends; returns how many there
    /// were. Durable when it returns; on an error nothing new is under the key. The default
    /// collects the bytes in memory first; adapters that can write piece by piece override it
    /// (the folder adapter copies through its temporary file in 64 KiB pieces), so a large
    /// input costs no memory.
    fn put_stream(&self, key: &str, source: &mut dyn std::io::Read) -> Result<u64> {
        let mut bytes = Vec::new();
        source
            .read_to_end(&mut bytes)
            .map_err(|err| stream_error(key, &err))?;
        self.put(key, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// [`BlobStore::put_if_absent`] of the bytes `source` yields until it ends: written only
    /// if the key is free (false when it was taken, before or while the bytes were read),
    /// and on an error nothing new is under the key. The default collects the bytes in
    /// memory first; the folder adapter copies them to a temporary file and links it into
    /// place, the S3 adapter copies a large stream to a temporary file and sends it from
    /// there with a conditional `PutObject`, so a large blob (a drop file's report) costs
    /// bounded memory.
    fn put_stream_if_absent(&self, key: &str, source: &mut dyn std::io::Read) -> Result<bool> {
        let mut bytes = Vec::new();
        source
            .read_to_end(&mut bytes)
            .map_err(|err| stream_error(key, &err))?;
        self.put_if_absent(key, &bytes)
    }

    /// The bytes under a key as a reader, to go through piece by piece; `None` when the key
    /// is free. The default reads them all with [`BlobStore::get`]; the folder adapter opens
    /// the file.
    fn open(&self, key: &str) -> Result<Option<Box<dyn std::io::Read + Send>>> {
        Ok(self
            .get(key)?
            .map(|bytes| Box::new(std::io::Cursor::new(bytes)) as Box<dyn std::io::Read + Send>))
    }

    /// Up to `len` bytes under a key from byte `start` (fewer at the end of the blob, none
    /// from its end on); `None` when the key is free. The default reads the whole blob with
    /// [`BlobStore::get`]; the S3 adapter sends a ranged `GetObject` and the folder adapter
    /// seeks, so a large blob can be read piece by piece in bounded memory.
    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.get(key)?.map(|bytes| {
            let from = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let to = usize::try_from(start.saturating_add(len))
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            bytes[from..to].to_vec()
        }))
    }

    /// Moves the entries right under `prefix` that are not blobs and that no key can name
    /// — symbolic links, FIFOs, sockets and devices, names that are not UTF-8 or hold a
    /// backslash — to the folder `aside` (a key prefix ending in `/`), never reading them,
    /// and says what it moved. Names starting with a dot are left alone. Only stores on a
    /// file system have such entries; the default moves nothing.
    fn set_aside_non_blobs(&self, prefix: &str, aside: &str) -> Result<Vec<SetAside>> {
        let _ = (prefix, aside);
        Ok(Vec::new())
    }

    /// [`BlobStore::put`] for many blobs (one outcome each, in order); every successful
    /// write is durable when this returns. The folder adapter syncs each folder once.
    fn put_many(&self, blobs: &[(&str, &[u8])]) -> Vec<Result<()>> {
        blobs
            .iter()
            .map(|&(key, bytes)| self.put(key, bytes))
            .collect()
    }

    /// [`BlobStore::put_if_absent`] for many blobs (one outcome each, in order; of two
    /// writes of one key, one is `true`). The default writes them one after another; the
    /// S3 adapter sends the requests concurrently, a bounded number in flight.
    fn put_if_absent_many(&self, blobs: &[(&str, &[u8])]) -> Vec<Result<bool>> {
        blobs
            .iter()
            .map(|&(key, bytes)| self.put_if_absent(key, bytes))
            .collect()
    }

    /// [`BlobStore::get`] for many keys (one outcome each, in order). The default reads
    /// them one after another; the S3 adapter sends the requests concurrently, a bounded
    /// number in flight, with no thread of its own per request.
    fn get_many(&self, keys: &[&str]) -> Vec<Result<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// For each `(from, to)`: makes `to` a copy of `from` unless `to` exists already
    /// (`Ok(true)` when copied, `Ok(false)` when `to` was there; [`Error::NotFound`] when
    /// `from` is missing). Every copy is durable when this returns. Adapters that can copy
    /// without moving the bytes, or make many writes durable at once, override it (the
    /// folder adapter links the files and syncs each folder once).
    fn copy_if_absent_many(&self, pairs: &[(&str, &str)]) -> Vec<Result<bool>> {
        pairs
            .iter()
            .map(|&(from, to)| match self.get(from)? {
                Some(bytes) => self.put_if_absent(to, &bytes),
                None => Err(Error::NotFound(format!("blob {from:?}"))),
            })
            .collect()
    }
}
