//! The import use case: one received record (or a batch of them) in, one
//! [`ImportResult`] per record out, over Bibgate's storage ports.
//!
//! Shared by the CLI, the gateway's processor and (later) the Lambda handler. For each record:
//! read its OCLC keys, look them up in the target zone's index, load the candidates (record,
//! lock, stored brief level and originating version), let `bibgate-engine` decide, and commit
//! the decision's writes atomically with the expectation it was based on. When another import
//! got there first ([`bibgate_store::Error::Conflict`]) the record is decided again on the new
//! state, so two imports of one new OCLC number end as one add and one merge.
//!
//! - [`route`], [`authenticate`]: from an institution (or a Connexion logon) to the profile,
//!   target zone and [`ImportRules`](bibgate_engine::ImportRules).
//! - [`Importer`]: [`Importer::import`], [`Importer::import_batch`], [`Importer::explain`].
//! - [`auth`]: argon2id password hashes.
//!
//! # Invariants
//!
//! - Every received record ends with exactly one stored result, whatever happened to it
//!   (unreadable, not convertible, rejected, added, merged), unless it is a dry run.
//! - A record is never added or merged without its result in the same commit.
//! - Stored records carry the MMS ID in 001 and no 003, so a local id is never read back as an
//!   OCLC number; an OCLC 001 that has no 035 twin is kept as `035 $a (OCoLC)N`.
#![deny(missing_docs)]

pub mod auth;
mod error;
pub mod policy;
mod route;

use std::collections::BTreeMap;

use bibgate_engine::{Candidate, Decision, Hit, Incoming, Outcome};
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::{self, Mode};
use bibgate_marc::{Parsed, Record};
use bibgate_matching::{BriefLevel, OclcKeys, oclc_keys, parse_005};
use bibgate_store::{
    Commit, Expectation, ImportResult, IndexKey, MmsId, Outcome as StoredOutcome, Store,
    StoredRecord,
};

pub use error::{Error, Result};
pub use policy::{PolicyInput, PolicyRun, PolicyRunner};
pub use route::{
    Route, authenticate, authenticate_at, connexion_profile, default_profile, import_rules,
    profile_for_logon, route,
};

/// The kind of integration profile Connexion exports use.
pub const CONNEXION: &str = "connexion";

/// How many times a record is decided again after a conflicting concurrent import.
const MAX_ATTEMPTS: usize = 20;

/// Where a received record came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Unique id: a Connexion export id, or `<batch>#<index>`.
    pub export_id: String,
    /// The batch, for files.
    pub batch_id: Option<String>,
    /// Position in the batch, from 1.
    pub index: Option<u64>,
    /// Blob key of the raw bytes.
    pub raw_key: String,
    /// Offset of the record in that blob.
    pub raw_offset: u64,
    /// Its length.
    pub raw_len: u64,
    /// When it arrived (Unix seconds).
    pub received_unix: i64,
}

/// A received record: decoded and checked, or unreadable.
#[derive(Clone, Debug)]
pub enum Input {
    /// Parsed, decoded and checked.
    Parsed(Box<Parsed>),
    /// Could not be framed or parsed; the message says why.
    Unreadable(String),
}

/// One record of a file, ready for [`Importer::import_batch`].
#[derive(Debug)]
pub struct BatchItem {
    /// The record, or why it could not be read.
    pub input: Input,
    /// Where it came from: export id `<batch>#<index>`, offset and length in the raw blob.
    pub received: Received,
    /// Its raw bytes, for a report of rejected records (a MARCXML record re-encoded as ISO
    /// 2709; empty when even that is impossible).
    pub raw: Vec<u8>,
}

/// Turns one item of a file (read from the blob `raw_key`) into a batch input.
pub fn batch_item(
    item: bibgate_marc::Item,
    batch_id: &str,
    raw_key: &str,
    received_unix: i64,
) -> BatchItem {
    let index = item.index as u64;
    let raw_len = item.raw.len() as u64;
    let (input, raw) = match item.outcome {
        Ok(parsed) => {
            let raw = if item.raw.is_empty() {
                let mut out = Vec::new();
                match iso2709::write_record(&parsed.decoded.record, &mut out) {
                    Ok(()) => out,
                    Err(_) => Vec::new(),
                }
            } else {
                item.raw
            };
            (Input::Parsed(Box::new(parsed)), raw)
        }
        Err(error) => (Input::Unreadable(error.to_string()), item.raw),
    };
    BatchItem {
        input,
        received: Received {
            export_id: format!("{batch_id}#{index}"),
            batch_id: Some(batch_id.to_string()),
            index: Some(index),
            raw_key: raw_key.to_string(),
            raw_offset: item.offset,
            raw_len,
            received_unix,
        },
        raw,
    }
}

/// What [`Importer::explain`] returns.
#[derive(Clone, Debug)]
pub struct Explained {
    /// The decision, if the record could be read.
    pub decision: Option<Decision>,
    /// The host message the sender would get (`(new)` stands for an MMS ID not yet given).
    pub host_message: String,
    /// Stable reason code.
    pub reason_code: String,
    /// The merge policy that decided, `name@revision sha256:<hex>`.
    pub policy: Option<String>,
}

/// A decision waiting for its commit.
struct Planned {
    received: Received,
    /// `None` for an unreadable record.
    decision: Option<Decision>,
    unreadable: Option<String>,
    numbers: Vec<u64>,
    matched: Vec<MmsId>,
    /// Revision of the single candidate, for a merge.
    revision: Option<u64>,
    created_unix: Option<i64>,
    linked_to_community_zone: bool,
    incoming: Option<Record>,
    /// The merge policy that ran, and its rejection when it rejected.
    policy: Option<String>,
    policy_reject: Option<policy::PolicyReject>,
}

impl Planned {
    /// A placeholder for a record to decide again on its own.
    fn retry(received: &Received) -> Planned {
        Planned {
            received: received.clone(),
            decision: None,
            unreadable: None,
            numbers: Vec::new(),
            matched: Vec::new(),
            revision: None,
            created_unix: None,
            linked_to_community_zone: false,
            incoming: None,
            policy: None,
            policy_reject: None,
        }
    }

    fn needs_retry(&self) -> bool {
        self.decision.is_none() && self.unreadable.is_none()
    }

    fn is_add(&self) -> bool {
        self.policy_reject.is_none()
            && matches!(
                self.decision.as_ref().map(|d| &d.outcome),
                Some(Outcome::Add { .. })
            )
    }
}

/// Runs imports over a store.
pub struct Importer<'a> {
    store: &'a dyn Store,
    policies: Option<&'a dyn PolicyRunner>,
    /// The export id whose stored bytes are imported again, named in each new result.
    retry_of: Option<String>,
}

const UNREADABLE: &str = "MARCXML_CONVERSION_FAILED";

impl<'a> Importer<'a> {
    /// An importer over `store`.
    pub fn new(store: &'a dyn Store) -> Importer<'a> {
        Importer {
            store,
            policies: None,
            retry_of: None,
        }
    }

    /// An importer over `store` that runs institutions' merge policies through `policies`
    /// (see [`policy`]); `None` is [`Importer::new`].
    pub fn with_policies(
        store: &'a dyn Store,
        policies: Option<&'a dyn PolicyRunner>,
    ) -> Importer<'a> {
        Importer {
            store,
            policies,
            retry_of: None,
        }
    }

    /// The same importer, naming `export_id` as the result its imports retry
    /// ([`ImportResult::retry_of`]): the stored bytes of that export imported again under
    /// a new export id.
    pub fn retrying(self, export_id: &str) -> Importer<'a> {
        Importer {
            retry_of: Some(export_id.to_owned()),
            ..self
        }
    }

    /// Decides and commits one record; retries after a concurrent import changed the state.
    /// A record whose export id already has a result gets that result back (retries are
    /// idempotent).
    pub fn import(
        &self,
        route: &Route,
        input: &Input,
        received: &Received,
        now_unix: i64,
    ) -> Result<ImportResult> {
        if let Some(existing) = self.store.result(&received.export_id)? {
            return Ok(existing);
        }
        for _ in 0..MAX_ATTEMPTS {
            let planned = match self.plan(route, input, received) {
                Ok(planned) => planned,
                Err(Error::Store(e)) if e.is_conflict() => continue,
                Err(e) => return Err(e),
            };
            let mms = if planned.is_add() {
                Some(self.store.allocate_mms_id(&route.zone.code)?)
            } else {
                None
            };
            let commit = finalize(route, planned, mms, &self.retry_of, now_unix)?;
            match self.store.commit(&commit) {
                Ok(()) => {
                    bibgate_failpoint::point("store.commit.after");
                    return result_of(commit);
                }
                Err(e) if e.is_conflict() => continue,
                // A limit of the store the record exceeds: that record's failure, stored
                // like any other result; never a batch failure or a retry.
                Err(e) if e.is_permanent() => {
                    let reject = too_large(commit, &e)?;
                    return match self.store.commit(&reject) {
                        Ok(()) => result_of(reject),
                        Err(bibgate_store::Error::AlreadyExists(_)) => self
                            .store
                            .result(&received.export_id)?
                            .ok_or_else(|| e.into()),
                        Err(e) => Err(e.into()),
                    };
                }
                Err(bibgate_store::Error::AlreadyExists(what)) => {
                    return match self.store.result(&received.export_id)? {
                        Some(existing) => Ok(existing),
                        None => Err(bibgate_store::Error::AlreadyExists(what).into()),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(bibgate_store::Error::Conflict(format!(
            "{} was decided {MAX_ATTEMPTS} times and the state changed every time",
            received.export_id
        ))
        .into())
    }

    /// Decides and commits many records in order, committing them in one durable
    /// transaction; records that conflict (with each other or with a concurrent import) are
    /// decided again one by one, in order.
    pub fn import_batch(
        &self,
        route: &Route,
        inputs: &[(Input, Received)],
        now_unix: i64,
    ) -> Result<Vec<ImportResult>> {
        // What every decision reads, from one snapshot (records of this batch that depend
        // on each other conflict at commit and are decided again, below).
        let keys: Vec<Option<OclcKeys>> =
            inputs.iter().map(|(input, _)| input_keys(input)).collect();
        let numbers: Vec<Vec<u64>> = keys
            .iter()
            .map(|k| k.as_ref().map_or_else(Vec::new, OclcKeys::numbers))
            .collect();
        let sets: Vec<&[u64]> = numbers.iter().map(Vec::as_slice).collect();
        let lookups = self.store.lookup_many(&route.zone.code, &sets)?;
        if lookups.len() != inputs.len() {
            return Err(Error::Store(bibgate_store::Error::Backend(format!(
                "the store answered {} lookups for {} records",
                lookups.len(),
                inputs.len()
            ))));
        }
        let mut planned = Vec::with_capacity(inputs.len());
        for ((((input, received), keys), numbers), lookup) in
            inputs.iter().zip(keys).zip(numbers).zip(&lookups)
        {
            match self.plan_with(route, input, received, keys, numbers, lookup) {
                Ok(plan) => planned.push(plan),
                // Decided again, alone, after the batch (see below).
                Err(Error::Store(e)) if e.is_conflict() => planned.push(Planned::retry(received)),
                Err(e) => return Err(e),
            }
        }
        let n_adds = planned.iter().filter(|p| p.is_add()).count();
        let mut ids = self
            .store
            .allocate_mms_ids(&route.zone.code, n_adds)?
            .into_iter();
        let mut commits = Vec::with_capacity(planned.len());
        let mut retry = Vec::with_capacity(planned.len());
        for plan in planned {
            retry.push(plan.needs_retry());
            if plan.needs_retry() {
                continue;
            }
            let mms = if plan.is_add() { ids.next() } else { None };
            commits.push(finalize(route, plan, mms, &self.retry_of, now_unix)?);
        }
        let mut outcomes = self.store.commit_batch(&commits)?.into_iter();
        bibgate_failpoint::point("store.commit.after");
        let mut commits = commits.into_iter();
        let mut results = Vec::with_capacity(inputs.len());
        for ((input, received), retry) in inputs.iter().zip(retry) {
            if retry {
                results.push(self.import(route, input, received, now_unix)?);
                continue;
            }
            let (Some(commit), Some(outcome)) = (commits.next(), outcomes.next()) else {
                return Err(Error::Store(bibgate_store::Error::Backend(
                    "the store answered fewer commits than it was given".into(),
                )));
            };
            match outcome {
                Ok(()) => results.push(result_of(commit)?),
                Err(e)
                    if e.is_conflict()
                        || e.is_permanent()
                        || matches!(e, bibgate_store::Error::AlreadyExists(_)) =>
                {
                    results.push(self.import(route, input, received, now_unix)?);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(results)
    }

    /// The decision for a record, with nothing written.
    pub fn explain(&self, route: &Route, input: &Input, received: &Received) -> Result<Explained> {
        let planned = self.plan(route, input, received)?;
        Ok(match (&planned.decision, &planned.unreadable) {
            (Some(decision), _) => Explained {
                host_message: planned.policy_reject.as_ref().map_or_else(
                    || decision.host_message(Some("(new)")),
                    |r| r.host_message.clone(),
                ),
                reason_code: planned
                    .policy_reject
                    .as_ref()
                    .map_or_else(|| decision.reason.code().to_string(), |r| r.code.clone()),
                decision: Some(decision.clone()),
                policy: planned.policy.clone(),
            },
            (None, message) => Explained {
                decision: None,
                host_message: unreadable_message(message.as_deref().unwrap_or("")),
                reason_code: UNREADABLE.into(),
                policy: None,
            },
        })
    }

    fn plan(&self, route: &Route, input: &Input, received: &Received) -> Result<Planned> {
        let keys = input_keys(input);
        let numbers = keys.as_ref().map_or_else(Vec::new, OclcKeys::numbers);
        let lookup = self.store.lookup(&route.zone.code, &numbers)?;
        self.plan_with(route, input, received, keys, numbers, &lookup)
    }

    /// Decides one record on what `lookup` (for `numbers`, the numbers of `keys`) read.
    fn plan_with(
        &self,
        route: &Route,
        input: &Input,
        received: &Received,
        keys: Option<OclcKeys>,
        numbers: Vec<u64>,
        lookup: &bibgate_store::Lookup,
    ) -> Result<Planned> {
        let zone = route.zone.code.as_str();
        let (parsed, keys) = match (input, keys) {
            (Input::Unreadable(message), _) => {
                return Ok(Planned {
                    received: received.clone(),
                    decision: None,
                    unreadable: Some(message.clone()),
                    numbers: Vec::new(),
                    matched: Vec::new(),
                    revision: None,
                    created_unix: None,
                    linked_to_community_zone: false,
                    incoming: None,
                    policy: None,
                    policy_reject: None,
                });
            }
            (Input::Parsed(parsed), Some(keys)) => (parsed, keys),
            (Input::Parsed(parsed), None) => (parsed, oclc_keys(&parsed.decoded.record)),
        };
        let record = &parsed.decoded.record;
        let mut by_record: BTreeMap<MmsId, Vec<Hit>> = BTreeMap::new();
        for entry in &lookup.entries {
            let incoming = keys
                .keys
                .iter()
                .find(|k| k.number.get() == entry.number)
                .map(|k| k.provenance);
            if let Some(incoming) = incoming {
                by_record
                    .entry(entry.mms_id.clone())
                    .or_default()
                    .push(Hit {
                        number: entry.number,
                        incoming,
                        existing_active: entry.active,
                    });
            }
        }
        let mut candidates = Vec::with_capacity(by_record.len());
        let mut revisions = Vec::with_capacity(by_record.len());
        let mut marcs: Vec<&[u8]> = Vec::with_capacity(by_record.len());
        for (mms_id, hits) in &by_record {
            let Some(stored) = lookup.records.iter().find(|r| &r.mms_id == mms_id) else {
                // The index names a record this read could not see: the state moved under
                // us. Deciding without it could add a duplicate, so decide again.
                return Err(Error::Store(bibgate_store::Error::Conflict(format!(
                    "the index of zone {zone} names record {mms_id}, which could not be read"
                ))));
            };
            let existing = read_stored(stored)?;
            let lock = lookup.locks.iter().find(|l| &l.mms_id == mms_id).map(|l| {
                bibgate_engine::EditorLock {
                    institution: l.institution.clone(),
                    user: l.user.clone(),
                    since_unix: l.since_unix,
                    left_unix: l.left_unix,
                }
            });
            marcs.push(&stored.marc);
            revisions.push((
                stored.revision,
                stored.created_unix,
                stored.linked_to_community_zone,
            ));
            candidates.push(Candidate {
                mms_id: mms_id.0.clone(),
                record: existing,
                brief_level: BriefLevel::new(stored.brief_level).unwrap_or(BriefLevel::MIN),
                originating_version: stored
                    .originating_version
                    .as_deref()
                    .and_then(|v| parse_005(v).ok())
                    .map(|p| p.version),
                lock,
                linked_to_community_zone: stored.linked_to_community_zone,
                hits: hits.clone(),
            });
        }
        let incoming = Incoming {
            record,
            verdict: &parsed.verdict,
        };
        let mut decision =
            bibgate_engine::decide(&incoming, &candidates, &route.rules, received.received_unix);
        let (mut policy, mut policy_reject) = (None, None);
        if let Some(runner) = self.policies {
            let cx = policy::Context {
                institution: &route.institution.code,
                rules: &route.rules,
                incoming,
                candidates: &candidates,
                marcs: &marcs,
                now_unix: received.received_unix,
            };
            let applied = policy::apply(runner, &cx, decision);
            (decision, policy, policy_reject) = (applied.decision, applied.label, applied.reject);
        }
        let (revision, created_unix, linked) = match &decision.outcome {
            Outcome::Merge { mms_id, .. } => candidates
                .iter()
                .position(|c| &c.mms_id == mms_id)
                .map(|i| revisions[i])
                .map_or((None, None, false), |(r, c, l)| (Some(r), Some(c), l)),
            _ => (None, None, false),
        };
        Ok(Planned {
            received: received.clone(),
            decision: Some(decision),
            unreadable: None,
            numbers,
            matched: by_record.into_keys().collect(),
            revision,
            created_unix,
            linked_to_community_zone: linked,
            incoming: Some(record.clone()),
            policy,
            policy_reject,
        })
    }
}

/// The OCLC keys of a readable record.
fn input_keys(input: &Input) -> Option<OclcKeys> {
    match input {
        Input::Parsed(parsed) => Some(oclc_keys(&parsed.decoded.record)),
        Input::Unreadable(_) => None,
    }
}

/// Reason code of a record the store cannot hold (too many OCLC numbers for one transaction).
pub const RECORD_TOO_LARGE: &str = "RECORD_TOO_LARGE";

/// The failed result that replaces `commit` when the store refused it for the record itself.
fn too_large(commit: Commit, error: &bibgate_store::Error) -> Result<Commit> {
    let mut result = match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            result
        }
        Commit::Replace { .. } | Commit::ReplaceMany { .. } => {
            return Err(Error::Store(bibgate_store::Error::Backend(format!(
                "an import made a commit that is not an import's: {error}"
            ))));
        }
    };
    result.outcome = StoredOutcome::Failed;
    result.host_message = format!("Import Failed--the record was not imported: {error}");
    result.reason_code = RECORD_TOO_LARGE.into();
    result.mms_id = None;
    result.trace.push(format!("store refused: {error}"));
    Ok(Commit::Reject { result })
}

fn unreadable_message(message: &str) -> String {
    format!(
        "{}the record could not be read: {message}",
        bibgate_engine::messages::CONVERSION_FAILED
    )
}

/// Decodes a stored record (ISO 2709, UTF-8).
pub fn read_stored(stored: &StoredRecord) -> Result<Record> {
    bibgate_marc::parse(&stored.marc, Mode::Lenient, Charset::Utf8)
        .map(|parsed| parsed.decoded.record)
        .map_err(|e| Error::CorruptRecord(stored.mms_id.0.clone(), e.to_string()))
}

/// Gives a record to be stored its MMS ID in 001 and removes 003, keeping an OCLC 001 that
/// has no 035 twin as `035 $a (OCoLC)N`.
pub fn localize(record: &mut Record, mms_id: &MmsId, incoming_keys: &OclcKeys) {
    use bibgate_matching::Provenance;
    let has_035 = |number: u64, record: &Record| {
        record.fields_with_tag("035").any(|f| {
            f.subfield_values(b'a')
                .any(|v| bibgate_matching::parse_035(v).is_ok_and(|n| n.get() == number))
        })
    };
    let from_001: Vec<u64> = incoming_keys
        .keys
        .iter()
        .filter(|k| k.provenance == Provenance::Active001)
        .map(|k| k.number.get())
        .collect();
    record
        .fields
        .retain(|f| !f.tag().is("001") && !f.tag().is("003"));
    for number in from_001 {
        if !has_035(number, record) {
            let position = record
                .fields
                .iter()
                .position(|f| f.tag().0.as_slice() > b"035".as_slice())
                .unwrap_or(record.fields.len());
            let mut field = Record::default();
            field.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
            record.fields.splice(position..position, field.fields);
        }
    }
    let mut id = Record::default();
    id.push_control("001", mms_id.0.clone());
    record.fields.splice(0..0, id.fields);
}

fn index_keys(record: &Record) -> Vec<IndexKey> {
    oclc_keys(record)
        .keys
        .iter()
        .map(|k| IndexKey {
            number: k.number.get(),
            active: k.provenance.is_active(),
        })
        .collect()
}

fn encode(record: &Record) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(2048);
    iso2709::write_record(record, &mut bytes)
        .map_err(|e| Error::CorruptRecord("(new)".into(), e.to_string()))?;
    Ok(bytes)
}

fn finalize(
    route: &Route,
    planned: Planned,
    mms: Option<MmsId>,
    retry_of: &Option<String>,
    now_unix: i64,
) -> Result<Commit> {
    let zone = route.zone.code.clone();
    let received = planned.received;
    let base = |outcome,
                host_message: String,
                reason_code: String,
                mms_id: Option<MmsId>,
                trace: Vec<String>| ImportResult {
        export_id: received.export_id.clone(),
        batch_id: received.batch_id.clone(),
        index: received.index,
        institution: route.institution.code.clone(),
        zone: zone.clone(),
        outcome,
        host_message,
        reason_code,
        mms_id,
        oclc_numbers: planned.numbers.clone(),
        raw_key: received.raw_key.clone(),
        raw_offset: received.raw_offset,
        raw_len: received.raw_len,
        received_unix: received.received_unix,
        decided_unix: now_unix,
        trace,
        policy: planned.policy.clone(),
        retry_of: retry_of.clone(),
    };
    let expect = Expectation {
        numbers: planned.numbers.clone(),
        matched: planned.matched.clone(),
    };
    let Some(decision) = planned.decision else {
        let message = planned.unreadable.unwrap_or_default();
        return Ok(Commit::Reject {
            result: base(
                StoredOutcome::Failed,
                unreadable_message(&message),
                UNREADABLE.into(),
                None,
                vec![format!("unreadable: {message}")],
            ),
        });
    };
    if let Some(reject) = planned.policy_reject {
        return Ok(Commit::Reject {
            result: base(
                StoredOutcome::Failed,
                reject.host_message,
                reject.code,
                None,
                decision.trace.clone(),
            ),
        });
    }
    let reason_code = decision.reason.code().to_string();
    match decision.outcome.clone() {
        Outcome::Add {
            brief_level,
            originating_version,
        } => {
            let Some(mms_id) = mms else {
                return Err(Error::Store(bibgate_store::Error::Backend(
                    "no MMS ID was allocated for an add".into(),
                )));
            };
            let mut record = planned.incoming.unwrap_or_default();
            let keys = oclc_keys(&record);
            localize(&mut record, &mms_id, &keys);
            let host_message = decision.host_message(Some(mms_id.as_str()));
            let result = base(
                StoredOutcome::Added,
                host_message,
                reason_code,
                Some(mms_id.clone()),
                decision.trace.clone(),
            );
            Ok(Commit::Add {
                expect,
                record: StoredRecord {
                    zone: zone.clone(),
                    mms_id,
                    marc: encode(&record)?,
                    revision: 1,
                    originating_version: originating_version.map(|v| v.to_string()),
                    brief_level: brief_level.get(),
                    linked_to_community_zone: false,
                    created_unix: now_unix,
                    updated_unix: now_unix,
                    keys: index_keys(&record),
                },
                result,
            })
        }
        Outcome::Merge {
            mms_id,
            mut merged,
            brief_level,
            originating_version,
        } => {
            let mms_id = MmsId(mms_id);
            let incoming_all = planned.incoming.as_ref().map(oclc_keys).unwrap_or_default();
            localize(&mut merged, &mms_id, &incoming_all);
            let host_message = decision.host_message(None);
            let revision = planned.revision.unwrap_or(1);
            let result = base(
                StoredOutcome::Merged,
                host_message,
                reason_code,
                Some(mms_id.clone()),
                decision.trace.clone(),
            );
            Ok(Commit::Merge {
                expect,
                expected_revision: revision,
                record: StoredRecord {
                    zone: zone.clone(),
                    mms_id,
                    marc: encode(&merged)?,
                    revision: revision + 1,
                    originating_version: originating_version.map(|v| v.to_string()),
                    brief_level: brief_level.get(),
                    linked_to_community_zone: planned.linked_to_community_zone,
                    created_unix: planned.created_unix.unwrap_or(now_unix),
                    updated_unix: now_unix,
                    keys: index_keys(&merged),
                },
                reason: format!("merged with {}", received.export_id),
                result,
            })
        }
        Outcome::Reject(_) => {
            let host_message = decision.host_message(None);
            Ok(Commit::Reject {
                result: base(
                    StoredOutcome::Failed,
                    host_message,
                    reason_code,
                    None,
                    decision.trace.clone(),
                ),
            })
        }
    }
}

/// The result an import commit carries (`finalize` never builds a `Replace`, which has none).
fn result_of(commit: Commit) -> Result<ImportResult> {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            Ok(result)
        }
        Commit::Replace { .. } | Commit::ReplaceMany { .. } => Err(Error::Store(
            bibgate_store::Error::Backend("an import commit without a result".into()),
        )),
    }
}
