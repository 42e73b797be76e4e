//! `bibgate bench-console`: the staff console's imports list and record page, timed over
//! HTTP on the embedded store with `--records` records and results for one institution,
//! against the same pages with `--baseline` of them (a benchmark, not a test).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bibgate_store::{
    Commit, Expectation, ImportResult, IndexKey, MmsId, Outcome, Store, StoredRecord,
};

use super::now_unix;
use crate::data::{Backend, Data};

const INSTITUTION: &str = "01DEMO_ALPHA";
const USER: &str = "bench";
const PASSWORD: &str = "bench console password";
/// Records committed per `commit_batch`.
const CHUNK: usize = 5_000;

/// Arguments of `bibgate bench-console`.
#[derive(clap::Args)]
pub struct Args {
    /// Records (each with its result) of the institution for the measured run.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Records of the baseline run.
    #[arg(long, default_value_t = 1_000)]
    baseline: usize,
    /// Requests timed per page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Where the two data directories are built (default: a temporary folder, removed
    /// after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// p50 and p99 of one page.
struct Timing {
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let idx = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(idx - 1).copied().unwrap_or_default()
}

/// `bibgate bench-console`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.records == 0 || args.baseline == 0 || args.requests == 0 {
        bail!("--records, --baseline and --requests must be at least 1");
    }
    let (root, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bibgate-bench-console-{}", std::process::id())),
            true,
        ),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "page      records    p50 ms   p99 ms")?;
    let mut rows = Vec::new();
    for n_records in [args.baseline, args.records] {
        let dir = root.join(format!("records-{n_records}"));
        let started = Instant::now();
        let (data, middle) = prepare(&dir, n_records)?;
        eprintln!(
            "bench-console: {n_records} records and results stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (imports, record) = measure(data, &middle, args.requests)?;
        for (page, timing) in [("imports", &imports), ("record", &record)] {
            writeln!(
                out,
                "{page:<9} {n_records:>8} {:>9.2} {:>8.2}",
                timing.p50.as_secs_f64() * 1e3,
                timing.p99.as_secs_f64() * 1e3
            )?;
        }
        rows.push((imports, record));
    }
    if let [(base_imports, base_record), (imports, record)] = rows.as_slice() {
        let ratio = |a: &Timing, b: &Timing| a.p99.as_secs_f64() / b.p99.as_secs_f64().max(1e-9);
        writeln!(
            out,
            "p99 ratio vs the baseline of {} records: imports {:.2}, record {:.2}",
            args.baseline,
            ratio(imports, base_imports),
            ratio(record, base_record)
        )?;
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(ExitCode::SUCCESS)
}

/// A data directory with the demo consortium, a staff account and `n_records` records of
/// the institution, each with its result (received a second apart, the newest now);
/// returns it and the MMS ID of the record in the middle.
fn prepare(dir: &Path, n_records: usize) -> anyhow::Result<(Data, MmsId)> {
    if dir.exists() {
        bail!(
            "{:?} exists: give --dir a new folder",
            dir.display().to_string()
        );
    }
    let data = Data::open(&Backend::Local(dir.to_path_buf()))?;
    crate::data::init_demo(&data, Some("bench-Pa55word"))?;
    let store: &dyn Store = &**data.store()?;
    super::staff::add(store, USER, INSTITUTION, false, PASSWORD)?;
    let now = now_unix();
    let first = now - n_records as i64;
    let mut middle = None;
    let mut done = 0usize;
    while done < n_records {
        let count = CHUNK.min(n_records - done);
        let mms_ids = store.allocate_mms_ids(INSTITUTION, count)?;
        let mut commits = Vec::with_capacity(count);
        for (offset, mms_id) in mms_ids.into_iter().enumerate() {
            let idx = done + offset;
            let number = 900_000_000 + idx as u64;
            if idx == n_records / 2 {
                middle = Some(mms_id.clone());
            }
            commits.push(add_commit(&mms_id, number, idx, first + idx as i64)?);
        }
        for result in store.commit_batch(&commits)? {
            result?;
        }
        done += count;
    }
    let middle = middle.context("no record was stored")?;
    Ok((data, middle))
}

fn add_commit(
    mms_id: &MmsId,
    number: u64,
    idx: usize,
    received_unix: i64,
) -> anyhow::Result<Commit> {
    let mut marc = bibgate_marc::Record::default();
    marc.push_control("001", mms_id.as_str());
    marc.push_control("008", "240101s2024    ilu           000 0 eng d");
    marc.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    marc.push_data(
        "245",
        b'1',
        b'0',
        &[(b'a', &format!("Benchmark book {idx}."))],
    );
    let mut bytes = Vec::new();
    bibgate_marc::iso2709::write_record(&marc, &mut bytes)
        .map_err(|error| anyhow::anyhow!("could not write a record: {error}"))?;
    let record = StoredRecord {
        zone: INSTITUTION.to_string(),
        mms_id: mms_id.clone(),
        marc: bytes,
        revision: 1,
        originating_version: None,
        brief_level: 0,
        linked_to_community_zone: false,
        created_unix: received_unix,
        updated_unix: received_unix,
        keys: vec![IndexKey {
            number,
            active: true,
        }],
    };
    let result = ImportResult {
        export_id: format!("bench-{idx}"),
        batch_id: None,
        index: None,
        institution: INSTITUTION.to_string(),
        zone: INSTITUTION.to_string(),
        outcome: Outcome::Added,
        host_message: "The record has been processed successfully.".to_string(),
        reason_code: "ADDED".to_string(),
        mms_id: Some(mms_id.clone()),
        oclc_numbers: vec![number],
        raw_key: String::new(),
        raw_offset: 0,
        raw_len: 0,
        received_unix,
        decided_unix: received_unix,
        trace: Vec::new(),
        policy: None,
        retry_of: None,
    };
    Ok(Commit::Add {
        expect: Expectation {
            numbers: vec![number],
            matched: Vec::new(),
        },
        record,
        result,
    })
}

/// One request (HTTP/1.1, `Connection: close`); the status and the whole answer.
fn get(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    Ok((status, answer))
}

/// The value after `marker` up to the next `end`.
fn between<'a>(text: &'a str, marker: &str, end: char) -> Option<&'a str> {
    let at = text.find(marker)? + marker.len();
    let rest = &text[at..];
    Some(&rest[..rest.find(end)?])
}

/// Serves the console on loopback, signs in, and times the two pages.
fn measure(data: Data, middle: &MmsId, requests: usize) -> anyhow::Result<(Timing, Timing)> {
    let runtime = super::serve::runtime()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(crate::console::serve(
        listener,
        Arc::new(data),
        crate::console::Options::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let (_, page) = get(&addr, "GET", "/signin", "", "")?;
    let token = between(&page, "bibgate_signin=", ';').context("no sign-in cookie")?;
    let csrf = between(&page, "name=\"csrf\" value=\"", '"').context("no sign-in token")?;
    let body = format!(
        "csrf={csrf}&user={USER}&password={}",
        PASSWORD.replace(' ', "+")
    );
    let (status, answer) = get(
        &addr,
        "POST",
        "/signin",
        &format!("bibgate_signin={token}"),
        &body,
    )?;
    let session = between(&answer, "bibgate_session=", ';')
        .filter(|_| status == 303)
        .context("could not sign in")?;
    let cookie = format!("bibgate_session={session}");
    let record_path = format!("/record?zone={INSTITUTION}&mms={}", middle.as_str());
    let mut timings = Vec::new();
    for path in ["/imports?since=3650d", record_path.as_str()] {
        // One request first, so that caches are warm as in use.
        get(&addr, "GET", path, &cookie, "")?;
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let (status, _) = get(&addr, "GET", path, &cookie, "")?;
            times.push(started.elapsed());
            if status != 200 {
                bail!("{path} answered {status}");
            }
        }
        times.sort();
        timings.push(Timing {
            p50: percentile(&times, 0.50),
            p99: percentile(&times, 0.99),
        });
    }
    let _ = stop.send(());
    let _ = runtime.block_on(server);
    let mut timings = timings.into_iter();
    match (timings.next(), timings.next()) {
        (Some(imports), Some(record)) => Ok((imports, record)),
        _ => bail!("no timings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_sorted_times() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&times, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&times[..1], 0.99), Duration::from_millis(1));
    }
}
