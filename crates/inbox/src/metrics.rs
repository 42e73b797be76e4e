//! The process's counters ([`global`]), a [`Store`] decorator that counts what is committed
//! ([`MeteredStore`]), and their two renderings: Prometheus text ([`Metrics::render`], for
//! `bibgate serve --metrics`) and CloudWatch embedded-metric-format log lines
//! ([`emf_lines`], for the Lambda function).
//!
//! Decision: hand-written, no metrics crate. The counters are a few atomics, two
//! fixed-bucket histograms and two small maps behind a mutex (one increment per stored
//! result, next to a durable commit); the text exposition is a hundred lines. The
//! `prometheus` and `metrics` crates would bring a registry, hashing and (for the first)
//! protobuf for what this needs.
//!
//! Results are counted when their commit succeeds, by `source` (`export`: a Connexion
//! export; `drop`: a record of a drop file or another batch import), institution, outcome
//! and reason code, so the counters equal the results stored by this process.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bibgate_store::{
    Commit, EditorLock, ImportResult, IndexEntry, Institution, Lookup, MmsId, Profile,
    RecordVersion, Result, Store, StoredRecord,
};

/// The labels of a stored result.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResultKey {
    /// `export` or `drop`.
    pub source: &'static str,
    /// The sending institution.
    pub institution: String,
    /// `added`, `merged` or `failed`.
    pub outcome: &'static str,
    /// The stable reason code.
    pub reason: String,
}

impl ResultKey {
    /// The labels of `result`.
    pub fn of(result: &ImportResult) -> ResultKey {
        ResultKey {
            source: if result.batch_id.is_some() {
                "drop"
            } else {
                "export"
            },
            institution: result.institution.clone(),
            outcome: result.outcome.as_str(),
            reason: result.reason_code.clone(),
        }
    }
}

/// A histogram with fixed upper bounds (seconds).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then +Inf; not cumulative (summed when rendered).
    buckets: [AtomicU64; 16],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    const fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; 16],
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        if let Some(slot) = self.buckets.get(bucket) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, slot) in self.bounds.iter().zip(&self.buckets) {
            cumulative += slot.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        if let Some(slot) = self.buckets.get(self.bounds.len()) {
            cumulative += slot.load(Ordering::Relaxed);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Reply latency bounds, seconds (a reply waits for the import: milliseconds to the
/// pending deadline).
const REPLY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Store commit bounds, seconds (a durable SQLite commit is about a millisecond).
const COMMIT_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process's counters (see the module docs).
#[derive(Debug)]
pub struct Metrics {
    results: Mutex<BTreeMap<ResultKey, u64>>,
    replies: Mutex<BTreeMap<&'static str, u64>>,
    /// From a complete request to its reply (Connexion gateway).
    pub reply_latency: Histogram,
    /// One `Store::commit` or `commit_batch`.
    pub commit_latency: Histogram,
    logon_failures: AtomicU64,
    lockouts_address: AtomicU64,
    lockouts_all: AtomicU64,
}

static METRICS: Metrics = Metrics::new();

/// The counters of this process.
pub fn global() -> &'static Metrics {
    &METRICS
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A label value in the text format: `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            results: Mutex::new(BTreeMap::new()),
            replies: Mutex::new(BTreeMap::new()),
            reply_latency: Histogram::new(REPLY_BOUNDS),
            commit_latency: Histogram::new(COMMIT_BOUNDS),
            logon_failures: AtomicU64::new(0),
            lockouts_address: AtomicU64::new(0),
            lockouts_all: AtomicU64::new(0),
        }
    }

    /// Counts a stored result.
    pub fn result_stored(&self, result: &ImportResult) {
        *lock(&self.results)
            .entry(ResultKey::of(result))
            .or_default() += 1;
    }

    /// Counts a Connexion reply of `status` (the gateway's answer statuses) that took
    /// `elapsed` from the complete request.
    pub fn replied(&self, status: &'static str, elapsed: Duration) {
        *lock(&self.replies).entry(status).or_default() += 1;
        self.reply_latency.observe(elapsed);
    }

    /// Counts a refused logon (wrong or unknown credentials, or a locked logon id).
    pub fn logon_failed(&self) {
        self.logon_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lock-out: of a logon id for one address (`all_addresses` false), or for
    /// every address but the trusted ones.
    pub fn locked_out(&self, all_addresses: bool) {
        let counter = if all_addresses {
            &self.lockouts_all
        } else {
            &self.lockouts_address
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The stored results so far, by labels.
    pub fn results(&self) -> BTreeMap<ResultKey, u64> {
        lock(&self.results).clone()
    }

    /// Everything in the Prometheus text format (version 0.0.4), then `gauges`: `(name,
    /// help, value)` read by the caller at scrape time (backlogs, process memory).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP bibgate_results_total Import results stored, by source (export, drop), institution, outcome and reason code."
        );
        let _ = writeln!(out, "# TYPE bibgate_results_total counter");
        for (key, count) in self.results() {
            let _ = writeln!(
                out,
                "bibgate_results_total{{source=\"{}\",institution=\"{}\",outcome=\"{}\",reason=\"{}\"}} {count}",
                key.source,
                label(&key.institution),
                key.outcome,
                label(&key.reason)
            );
        }
        let _ = writeln!(
            out,
            "# HELP bibgate_replies_total Connexion replies sent, by status."
        );
        let _ = writeln!(out, "# TYPE bibgate_replies_total counter");
        for (status, count) in lock(&self.replies).iter() {
            let _ = writeln!(out, "bibgate_replies_total{{status=\"{status}\"}} {count}");
        }
        self.reply_latency.render(
            &mut out,
            "bibgate_reply_seconds",
            "Time from a complete Connexion request to its reply.",
        );
        let _ = writeln!(
            out,
            "# HELP bibgate_logon_failures_total Connexion logons refused (wrong credentials or a locked logon id)."
        );
        let _ = writeln!(out, "# TYPE bibgate_logon_failures_total counter");
        let _ = writeln!(
            out,
            "bibgate_logon_failures_total {}",
            self.logon_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP bibgate_logon_lockouts_total Logon ids locked after repeated failures, for one address or for all."
        );
        let _ = writeln!(out, "# TYPE bibgate_logon_lockouts_total counter");
        for (scope, counter) in [
            ("address", &self.lockouts_address),
            ("all", &self.lockouts_all),
        ] {
            let _ = writeln!(
                out,
                "bibgate_logon_lockouts_total{{scope=\"{scope}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        self.commit_latency.render(
            &mut out,
            "bibgate_store_commit_seconds",
            "Time of one durable store commit (one export, or a chunk of a drop file).",
        );
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// CloudWatch embedded-metric-format log lines (namespace `Bibgate`, metric `Results`, unit
/// Count, dimensions source, institution, outcome and reason) for the results counted
/// since `previous` (a snapshot of [`Metrics::results`]), at `timestamp_ms`. One line per
/// label set that grew; none when nothing did.
pub fn emf_lines(
    previous: &BTreeMap<ResultKey, u64>,
    now: &BTreeMap<ResultKey, u64>,
    timestamp_ms: i64,
) -> Vec<String> {
    now.iter()
        .filter_map(|(key, &count)| {
            let delta = count.saturating_sub(previous.get(key).copied().unwrap_or(0));
            (delta > 0).then(|| {
                serde_json::json!({
                    "_aws": {
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": "Bibgate",
                            "Dimensions": [["source", "institution", "outcome", "reason"]],
                            "Metrics": [{ "Name": "Results", "Unit": "Count" }],
                        }],
                    },
                    "source": key.source,
                    "institution": key.institution,
                    "outcome": key.outcome,
                    "reason": key.reason,
                    "Results": delta,
                })
                .to_string()
            })
        })
        .collect()
}

/// A [`Store`] that counts every result it commits into [`global`] and times every commit;
/// everything else goes straight to the store it wraps.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> MeteredStore {
        MeteredStore { inner }
    }
}

fn result_of(commit: &Commit) -> Option<&ImportResult> {
    match commit {
        Commit::Add { result, .. } | Commit::Merge { result, .. } | Commit::Reject { result } => {
            Some(result)
        }
        Commit::Replace { .. } | Commit::ReplaceMany { .. } => None,
    }
}

impl Store for MeteredStore {
    fn put_institution(&self, institution: &Institution) -> Result<()> {
        self.inner.put_institution(institution)
    }
    fn institutions(&self) -> Result<Vec<Institution>> {
        self.inner.institutions()
    }
    fn institution(&self, code: &str) -> Result<Option<Institution>> {
        self.inner.institution(code)
    }
    fn put_profile(&self, profile: &Profile) -> Result<()> {
        self.inner.put_profile(profile)
    }
    fn delete_profile(&self, id: &str) -> Result<bool> {
        self.inner.delete_profile(id)
    }
    fn profiles(&self, institution: &str) -> Result<Vec<Profile>> {
        self.inner.profiles(institution)
    }
    fn allocate_mms_id(&self, zone: &str) -> Result<MmsId> {
        self.inner.allocate_mms_id(zone)
    }
    fn allocate_mms_ids(&self, zone: &str, count: usize) -> Result<Vec<MmsId>> {
        self.inner.allocate_mms_ids(zone, count)
    }
    fn find_by_oclc(&self, zone: &str, numbers: &[u64]) -> Result<Vec<IndexEntry>> {
        self.inner.find_by_oclc(zone, numbers)
    }
    fn record(&self, zone: &str, mms_id: &MmsId) -> Result<Option<StoredRecord>> {
        self.inner.record(zone, mms_id)
    }
    fn lookup(&self, zone: &str, numbers: &[u64]) -> Result<Lookup> {
        self.inner.lookup(zone, numbers)
    }
    fn lookup_many(&self, zone: &str, sets: &[&[u64]]) -> Result<Vec<Lookup>> {
        self.inner.lookup_many(zone, sets)
    }
    fn versions(&self, zone: &str, mms_id: &MmsId) -> Result<Vec<RecordVersion>> {
        self.inner.versions(zone, mms_id)
    }
    fn count_records(&self, zone: &str) -> Result<u64> {
        self.inner.count_records(zone)
    }
    fn duplicates(&self, zone: &str) -> Result<Vec<(u64, Vec<IndexEntry>)>> {
        self.inner.duplicates(zone)
    }
    fn commit(&self, commit: &Commit) -> Result<()> {
        let started = Instant::now();
        let outcome = self.inner.commit(commit);
        METRICS.commit_latency.observe(started.elapsed());
        if outcome.is_ok()
            && let Some(result) = result_of(commit)
        {
            METRICS.result_stored(result);
        }
        outcome
    }
    fn commit_batch(&self, commits: &[Commit]) -> Result<Vec<Result<()>>> {
        let started = Instant::now();
        let outcomes = self.inner.commit_batch(commits)?;
        METRICS.commit_latency.observe(started.elapsed());
        for (commit, outcome) in commits.iter().zip(&outcomes) {
            if outcome.is_ok()
                && let Some(result) = result_of(commit)
            {
                METRICS.result_stored(result);
            }
        }
        Ok(outcomes)
    }
    fn put_lock(&self, lock: &EditorLock) -> Result<()> {
        self.inner.put_lock(lock)
    }
    fn release_lock(&self, zone: &str, mms_id: &MmsId) -> Result<bool> {
        self.inner.release_lock(zone, mms_id)
    }
    fn lock(&self, zone: &str, mms_id: &MmsId) -> Result<Option<EditorLock>> {
        self.inner.lock(zone, mms_id)
    }
    fn locks(&self, zone: &str) -> Result<Vec<EditorLock>> {
        self.inner.locks(zone)
    }
    fn result(&self, export_id: &str) -> Result<Option<ImportResult>> {
        self.inner.result(export_id)
    }
    fn batch_results(&self, batch_id: &str) -> Result<Vec<ImportResult>> {
        self.inner.batch_results(batch_id)
    }
    fn list_records(&self, zone: &str, after: Option<&MmsId>, limit: usize) -> Result<Vec<MmsId>> {
        self.inner.list_records(zone, after, limit)
    }
    fn find_by_term(&self, zone: &str, term: &str, limit: usize) -> Result<Vec<MmsId>> {
        self.inner.find_by_term(zone, term, limit)
    }
    fn institution_results(
        &self,
        institution: &str,
        since_unix: i64,
        limit: usize,
    ) -> Result<Vec<ImportResult>> {
        self.inner
            .institution_results(institution, since_unix, limit)
    }

    fn add_staff(&self, account: &bibgate_store::StaffAccount) -> Result<()> {
        self.inner.add_staff(account)
    }

    fn staff(&self, user: &str) -> Result<Option<bibgate_store::StaffAccount>> {
        self.inner.staff(user)
    }

    fn staff_list(&self) -> Result<Vec<bibgate_store::StaffAccount>> {
        self.inner.staff_list()
    }

    fn remove_staff(&self, user: &str) -> Result<bool> {
        self.inner.remove_staff(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store::contract::{ZONE_A, active, add_commit, sample_record, setup_zones};

    #[test]
    fn committed_results_are_counted_and_rendered() {
        let inner = Arc::new(bibgate_store_local::SqliteStore::in_memory().unwrap());
        setup_zones(&*inner);
        let store = MeteredStore::new(inner);
        let before = global().results();
        let mms_id = store.allocate_mms_id(ZONE_A).unwrap();
        let record = sample_record(ZONE_A, &mms_id, &[active(5)]);
        let commit = add_commit(&record, &[], "metered-1");
        store.commit(&commit).unwrap();
        // A second commit of the same export is refused and not counted.
        assert!(store.commit(&commit).is_err());
        let key = ResultKey::of(result_of(&commit).unwrap());
        let after = global().results();
        assert_eq!(
            after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0),
            1
        );
        let text = global().render(&[("bibgate_inbox_backlog", "Exports waiting.", 3.0)]);
        assert!(text.contains(
            "bibgate_results_total{source=\"export\",institution=\"01DEMO_ALPHA\",outcome=\"added\",reason=\"ADDED\"}"
        ), "{text}");
        assert!(
            text.contains("bibgate_store_commit_seconds_bucket{le=\"+Inf\"}"),
            "{text}"
        );
        assert!(text.contains("bibgate_inbox_backlog 3\n"), "{text}");
        let lines = emf_lines(&before, &after, 1_700_000_000_000);
        let line: serde_json::Value = serde_json::from_str(
            lines
                .iter()
                .find(|line| line.contains("metered") || line.contains("ADDED"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Bibgate");
        assert_eq!(line["Results"], 1);
        assert_eq!(line["institution"], "01DEMO_ALPHA");
        assert!(emf_lines(&after, &after, 0).is_empty());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
