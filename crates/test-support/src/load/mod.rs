//! The load driver: simultaneous exports of one record, and a mixed load of Connexion
//! exports and drop-folder batch files against a running shim and processor, with latency
//! and RSS over time.
//!
//! Used by `bibgate-gateway`'s examples `load` (embedded, long runs) and `latency` (its
//! records) and by the load tests of `bibgate-gateway` (embedded) and
//! `bibgate-import-processor` (DynamoDB + S3 on moto). It reaches the system only through
//! the socket and the storage ports ([`Services`]), so it does not know which backend or
//! which processor is behind the shim.
//!
//! # The mixed load ([`run`])
//!
//! `clients` export clients loop until the end of the run, each export on its own
//! connection (as the Connexion client does), pausing `think` between exports. Every
//! export's bytes are distinct (a 500 note names the client and its sequence number)
//! except retries. Per export, by a fixed pseudo-random draw:
//!
//! | share | kind | expected reply |
//! |---|---|---|
//! | 60 % | a new OCLC number of the client's own | success, a new MMS ID |
//! | 15 % | a number the client added before | success naming that MMS ID |
//! | 10 % | a number from a pool shared with every client and every drop file | success |
//! | 10 % | the client's previous bytes again (a retry) | the previous reply, to the byte |
//! | 5 % | a record that cannot be converted to MARCXML | `Import Failed - Failed to convert…` |
//!
//! Every `drop_every` a batch file of `drop_records` records is written to
//! `drop/<institution>/load-NNNN.mrc`: every fifth record has a number from the shared pool,
//! every seventh one a number of the previous file (a merge, or an add when that file is
//! not imported yet), the middle one cannot be converted, the rest are new numbers.
//!
//! # What [`Report::verify`] checks
//!
//! No error or "pending" reply and every reply the expected one; every drop file gone from
//! the folder and its report there with one line per record, in order, the unconvertible
//! record failed and the others added or merged; every OCLC number that got a success
//! (reply or report line) is in exactly one record, the one every reply and report line
//! for it named; the zone holds exactly as many records as there are such numbers.
//! [`Report::flatness`] compares the last third of the run with the first (p99 latency)
//! and the last minute with the first (peak RSS, or the last and first thirds when the run
//! is shorter than three minutes).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bibgate_gateway::LengthEncoding;
use bibgate_inbox::Services;
use bibgate_inbox::layout::report_key;
use bibgate_marc::{Leader, Record};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::consortium::SUCCESS;
/// The start of the reply to a record that cannot be converted to MARCXML.
pub const UNCONVERTIBLE: &str = "Import Failed - Failed to convert marc record to marc xml: ";

/// Client `c`'s new numbers are `CLIENT_BASE + c * CLIENT_SPAN + seq`.
const CLIENT_BASE: u64 = 10_000_000;
const CLIENT_SPAN: u64 = 200_000;
/// Drop file `k`'s new numbers are `DROP_BASE + k * 1_000 + i`.
const DROP_BASE: u64 = 40_000_000;
/// The shared pool: `SHARED_BASE + 0..SHARED_POOL`.
const SHARED_BASE: u64 = 60_000_000;
const SHARED_POOL: u64 = 500;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A full-level record with OCLC number `number` (001/003 and 035), a fixed 005 and some
/// ordinary fields (about 560 bytes with an 18-byte note); `note` goes into a 500.
pub fn record(number: u64, note: &str) -> Vec<u8> {
    let mut leader = Leader::DEFAULT;
    leader.0[17] = b' ';
    let mut record = Record {
        leader,
        fields: Vec::new(),
    };
    record.push_control("001", format!("ocm{number:08}"));
    record.push_control("003", "OCoLC");
    record.push_control("005", "20240101120000.0");
    record.push_control("008", "240101s2024    ilu           000 0 eng d");
    record.push_data("020", b' ', b' ', &[(b'a', "9780000000002")]);
    record.push_data("035", b' ', b' ', &[(b'a', &format!("(OCoLC){number}"))]);
    record.push_data(
        "040",
        b' ',
        b' ',
        &[(b'a', "DLC"), (b'b', "eng"), (b'c', "DLC")],
    );
    record.push_data(
        "100",
        b'1',
        b' ',
        &[(b'a', "Loader, Ada,"), (b'd', "1970-")],
    );
    record.push_data(
        "245",
        b'1',
        b'0',
        &[
            (b'a', &format!("Load test title {number} :")),
            (b'b', "a record of ordinary length /"),
            (b'c', "Ada Loader."),
        ],
    );
    record.push_data(
        "264",
        b' ',
        b'1',
        &[
            (b'a', "Chicago :"),
            (b'b', "Bibgate Press,"),
            (b'c', "2024."),
        ],
    );
    record.push_data(
        "300",
        b' ',
        b' ',
        &[(b'a', "x, 250 pages ;"), (b'c', "24 cm")],
    );
    record.push_data("500", b' ', b' ', &[(b'a', note)]);
    record.push_data(
        "650",
        b' ',
        b'0',
        &[(b'a', "Libraries"), (b'x', "Automation.")],
    );
    record.push_data(
        "650",
        b' ',
        b'0',
        &[(b'a', "Cataloging"), (b'x', "Data processing.")],
    );
    let mut bytes = Vec::new();
    // A record built from valid tags and short values always encodes.
    let _ = bibgate_marc::iso2709::write_record(&record, &mut bytes);
    bytes
}

/// A MARC-8 record whose 500 is about 5,000 bytes on the wire and 10,000 in UTF-8: it
/// cannot be converted to MARCXML (`MARCXML_CONVERSION_FAILED`).
pub fn unconvertible(number: u64, note: &str) -> Vec<u8> {
    let filler = "x".repeat(5_000);
    let mut bytes = record(number, &format!("{note} {filler}"));
    if let Some(start) = bytes
        .windows(filler.len())
        .position(|w| w == filler.as_bytes())
    {
        for byte in &mut bytes[start..start + filler.len()] {
            *byte = 0xB5;
        }
    }
    bytes[9] = b' ';
    bytes
}

/// The Connexion desktop client's request: `A` (logon) and `P` (password) with
/// single-byte lengths, then the record.
pub fn request(logon: &str, password: &str, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 64);
    for (tag, value) in [(b'A', logon), (b'P', password)] {
        out.push(tag);
        out.push(0x40 + u8::try_from(value.len()).unwrap_or(0x3f).min(0x7f));
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(record);
    out
}

/// Reads one reply (up to its NUL); the text without the NUL, or what went wrong.
async fn read_reply(stream: &mut TcpStream, limit: Duration) -> Result<String, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Err("closed before a reply".to_string()),
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.contains(&0) {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    })
    .await;
    match read {
        Err(_) => Err(format!("no reply within {limit:?}")),
        Ok(Err(error)) => Err(error),
        Ok(Ok(())) => {
            if out.last() != Some(&0) || out.iter().filter(|&&b| b == 0).count() != 1 {
                return Err(format!(
                    "the reply does not end with exactly one NUL: {:?}",
                    out.escape_ascii().to_string()
                ));
            }
            out.pop();
            String::from_utf8(out).map_err(|e| e.to_string())
        }
    }
}

/// One connection per record: all connect first, then (a barrier) every request is sent
/// at once. Returns each reply text (without its NUL) or what went wrong, in `records`
/// order.
pub async fn simultaneous(
    addr: &str,
    logon: &str,
    password: &str,
    records: Vec<Vec<u8>>,
    limit: Duration,
) -> Vec<Result<String, String>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(records.len()));
    let mut tasks = Vec::new();
    for record in records {
        let barrier = barrier.clone();
        let addr = addr.to_string();
        let bytes = request(logon, password, &record);
        tasks.push(tokio::spawn(async move {
            let connected = tokio::time::timeout(limit, TcpStream::connect(&addr)).await;
            // Every task reaches the barrier, connected or not, so none waits forever.
            barrier.wait().await;
            let mut stream = match connected {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(format!("connect: {error}")),
                Err(_) => return Err("connect: timed out".to_string()),
            };
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("write: {e}"))?;
            let reply = read_reply(&mut stream, limit).await;
            let _ = stream.shutdown().await;
            reply
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    replies
}

/// The MMS ID a success reply names.
pub fn mms_of(reply: &str) -> Option<String> {
    let mms = reply.strip_prefix(SUCCESS)?.strip_prefix(" MMS ID: ")?;
    (!mms.is_empty() && mms.bytes().all(|b| b.is_ascii_digit())).then(|| mms.to_string())
}

/// The MMS ID that every one of `replies` names; panics unless each is the same success
/// reply (the load tests' "every client got the same answer").
pub fn one_mms_id(replies: Vec<Result<String, String>>) -> String {
    let replies: Vec<String> = replies
        .into_iter()
        .map(|reply| reply.unwrap_or_else(|error| panic!("a client failed: {error}")))
        .collect();
    let mms = mms_of(&replies[0]).unwrap_or_else(|| panic!("{}", replies[0]));
    for reply in &replies {
        assert_eq!(reply, &format!("{SUCCESS} MMS ID: {mms}"));
    }
    mms
}

/// Checks that OCLC number `number` is the one record of `zone`, `mms`.
pub fn only_record(store: &dyn bibgate_store::Store, zone: &str, number: u64, mms: &str) {
    let found = store.find_by_oclc(zone, &[number]).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].mms_id.0, mms);
    assert_eq!(store.count_records(zone).unwrap(), 1);
}

/// Checks the results of exports of copies of one new record: one add and merges for the
/// others, all naming `mms`.
pub fn one_add_then_merges(results: &[bibgate_store::ImportResult], mms: &str) {
    use bibgate_store::Outcome;
    let count = |outcome: Outcome| results.iter().filter(|r| r.outcome == outcome).count();
    assert_eq!(
        (count(Outcome::Added), count(Outcome::Merged)),
        (1, results.len() - 1),
        "{results:?}"
    );
    for result in results {
        assert_eq!(result.mms_id.as_ref().map(|m| m.0.as_str()), Some(mms));
    }
}

/// Settings of a mixed-load run.
#[derive(Clone, Debug)]
pub struct Load {
    /// How long the clients and the drop writer run.
    pub duration: Duration,
    /// Export clients.
    pub clients: usize,
    /// Pause of a client between two exports.
    pub think: Duration,
    /// A drop file is written this often.
    pub drop_every: Duration,
    /// Records per drop file.
    pub drop_records: usize,
    /// The institution (logon id, zone and drop folder).
    pub institution: String,
    /// Its Connexion password.
    pub password: String,
    /// The longest wait for one reply.
    pub reply_timeout: Duration,
    /// After the run, how long to wait for the last drop files' reports.
    pub settle_timeout: Duration,
    /// Length of one row of the table.
    pub interval: Duration,
}

impl Load {
    /// `duration` from the environment variable `var` (seconds), else `default`.
    pub fn seconds_from_env(var: &str, default: u64) -> Duration {
        Duration::from_secs(
            std::env::var(var)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(default),
        )
    }
}

/// One export as measured by its client.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds since the start of the run when the export was sent.
    pub at: f64,
    /// Round trip (connect, logon, record, reply).
    pub latency: Duration,
}

/// A drop file written during the run.
#[derive(Clone, Debug)]
pub struct DropFile {
    /// The file name in the drop folder.
    pub name: String,
    /// The OCLC number of each record, in file order.
    pub numbers: Vec<u64>,
    /// The index (from 1) of the record that cannot be converted.
    pub unconvertible: usize,
    /// Seconds since the start when it was written.
    pub written: f64,
    /// Seconds since the start when its report was seen, and the report.
    pub reported: Option<(f64, Vec<u8>)>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// The run's duration in seconds.
    pub duration: f64,
    /// Length of a table row in seconds.
    pub interval: f64,
    /// Every export (the warm-up excluded).
    pub samples: Vec<Sample>,
    /// Exports by kind.
    pub kinds: BTreeMap<&'static str, usize>,
    /// Replies that were errors or not the expected ones, and other failures.
    pub errors: Vec<String>,
    /// Resident set size over time: (seconds since the start, KiB).
    pub rss: Vec<(f64, u64)>,
    /// The drop files.
    pub drops: Vec<DropFile>,
    /// OCLC number → the MMS ID the success replies named.
    pub exported: HashMap<u64, String>,
    /// OCLC numbers of exports answered "pending" (errors, but imported all the same).
    pub pending: Vec<u64>,
}

/// The process's resident set size in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// A small deterministic generator (xorshift64*), so that runs are repeatable.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// State shared by the tasks of a run.
struct Shared {
    started: Instant,
    samples: Mutex<Vec<Sample>>,
    kinds: Mutex<BTreeMap<&'static str, usize>>,
    errors: Mutex<Vec<String>>,
    exported: Mutex<HashMap<u64, String>>,
    pending: Mutex<Vec<u64>>,
}

impl Shared {
    fn error(&self, message: String) {
        let mut errors = lock(&self.errors);
        // Keep the report readable when everything fails.
        if errors.len() < 1_000 {
            errors.push(message);
        }
    }

    /// Notes that a success reply for `number` named `mms`: every reply for a number
    /// must name the same record.
    fn exported(&self, number: u64, mms: &str) {
        let mut exported = lock(&self.exported);
        match exported.get(&number) {
            Some(known) if known != mms => {
                let known = known.clone();
                drop(exported);
                self.error(format!(
                    "OCLC {number}: a reply named MMS ID {mms}, an earlier one {known}"
                ));
            }
            Some(_) => {}
            None => {
                exported.insert(number, mms.to_string());
            }
        }
    }
}

/// One export: sends, measures, and checks the reply against `expect`.
async fn export(
    load: &Load,
    addr: &str,
    shared: &Shared,
    number: u64,
    bytes: &[u8],
    kind: &'static str,
    expect: &Expect,
) -> Option<String> {
    let at = shared.started.elapsed().as_secs_f64();
    let sent = Instant::now();
    let reply = bibgate_gateway::send(
        addr,
        &load.institution,
        &load.password,
        bytes,
        LengthEncoding::Byte,
        load.reply_timeout,
    )
    .await;
    let latency = sent.elapsed();
    lock(&shared.samples).push(Sample { at, latency });
    *lock(&shared.kinds).entry(kind).or_default() += 1;
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            shared.error(format!(
                "{kind} export of OCLC {number} at {at:.1} s: {error}"
            ));
            return None;
        }
    };
    let ok = match expect {
        Expect::Success => mms_of(&reply).is_some(),
        Expect::Mms(mms) => mms_of(&reply).as_deref() == Some(mms.as_str()),
        // A failure is not kept by the retry window: its retry is a new export, with the same
        // message and its own export id.
        Expect::Exactly(text) => message_of(&reply) == message_of(text),
        Expect::Unconvertible => reply.starts_with(UNCONVERTIBLE),
    };
    if !ok {
        if reply.starts_with("Import pending") {
            lock(&shared.pending).push(number);
        }
        shared.error(format!(
            "{kind} export of OCLC {number} at {at:.1} s: expected {expect:?}, got {reply:?}"
        ));
        return None;
    }
    if let Some(mms) = mms_of(&reply) {
        shared.exported(number, &mms);
    }
    Some(reply)
}

/// A reply without the export id line that ends every reply that is not a success (or the
/// line that says a refused logon past its address's budget was not recorded).
fn message_of(reply: &str) -> &str {
    let reply = reply
        .strip_suffix(bibgate_gateway::REFUSAL_NOT_RECORDED)
        .and_then(|head| head.strip_suffix('\n'))
        .unwrap_or(reply);
    reply
        .split_once("\nExport ID: ")
        .map_or(reply, |(message, _)| message)
}

/// The reply an export must get.
#[derive(Debug)]
enum Expect {
    /// Success with some MMS ID.
    Success,
    /// Success naming this MMS ID.
    Mms(String),
    /// This exact text.
    Exactly(String),
    /// The MARCXML conversion failure.
    Unconvertible,
}

/// One export client until `until`.
async fn client(load: Arc<Load>, addr: String, shared: Arc<Shared>, id: usize, until: Instant) {
    let mut rng = Rng::new(id as u64 + 1);
    let mut seq: u64 = 0;
    let mut own: Vec<(u64, String)> = Vec::new();
    let mut previous: Option<(u64, Vec<u8>, String)> = None;
    let base = CLIENT_BASE + id as u64 * CLIENT_SPAN;
    while Instant::now() < until {
        seq += 1;
        let note = format!("Exported by load client {id}, export {seq}.");
        let draw = rng.below(100);
        let (kind, number, bytes, expect) = if draw < 5 {
            let number = base + seq;
            (
                "unconvertible",
                number,
                unconvertible(number, &note),
                Expect::Unconvertible,
            )
        } else if draw < 15 && previous.is_some() {
            let Some((number, bytes, reply)) = previous.clone() else {
                continue;
            };
            ("retry", number, bytes, Expect::Exactly(reply))
        } else if draw < 30 && !own.is_empty() {
            let pick = usize::try_from(rng.below(own.len() as u64)).unwrap_or(0);
            let (number, mms) = own[pick.min(own.len() - 1)].clone();
            ("merge", number, record(number, &note), Expect::Mms(mms))
        } else if draw < 40 {
            let number = SHARED_BASE + rng.below(SHARED_POOL);
            ("shared", number, record(number, &note), Expect::Success)
        } else {
            let number = base + seq;
            ("new", number, record(number, &note), Expect::Success)
        };
        let reply = export(&load, &addr, &shared, number, &bytes, kind, &expect).await;
        if let Some(reply) = reply {
            if kind == "new"
                && let Some(mms) = mms_of(&reply)
            {
                own.push((number, mms));
            }
            previous = Some((number, bytes, reply));
        }
        tokio::time::sleep(load.think).await;
    }
}

/// The bytes of drop file `k` and its numbers; `previous` are the numbers of file `k - 1`.
fn drop_file(k: u64, n: usize, previous: &[u64], rng: &mut Rng) -> (Vec<u8>, Vec<u64>, usize) {
    let middle = n / 2 + 1;
    let mut bytes = Vec::new();
    let mut numbers = Vec::with_capacity(n);
    for index in 1..=n {
        let fresh = DROP_BASE + k * 1_000 + index as u64;
        let note = format!("Dropped in load file {k}, record {index}.");
        let number = if index == middle {
            bytes.extend(unconvertible(fresh, &note));
            numbers.push(fresh);
            continue;
        } else if index % 5 == 0 {
            SHARED_BASE + rng.below(SHARED_POOL)
        } else if index % 7 == 0 && !previous.is_empty() {
            previous[usize::try_from(rng.below(previous.len() as u64)).unwrap_or(0)]
        } else {
            fresh
        };
        bytes.extend(record(number, &note));
        numbers.push(number);
    }
    (bytes, numbers, middle)
}

/// Runs the mixed load against the shim at `addr` (whose processor must be running over
/// `services`); see the module docs.
pub async fn run(load: Load, addr: &str, services: &Services) -> Report {
    let load = Arc::new(load);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        samples: Mutex::new(Vec::new()),
        kinds: Mutex::new(BTreeMap::new()),
        errors: Mutex::new(Vec::new()),
        exported: Mutex::new(HashMap::new()),
        pending: Mutex::new(Vec::new()),
    });
    // Warm-up: the first logon pays the password hash; later ones hit the logon cache.
    let warm = CLIENT_BASE + load.clients as u64 * CLIENT_SPAN;
    match bibgate_gateway::send(
        addr,
        &load.institution,
        &load.password,
        &record(warm, "Warm-up."),
        LengthEncoding::Byte,
        load.reply_timeout,
    )
    .await
    {
        Ok(reply) => match mms_of(&reply) {
            Some(mms) => shared.exported(warm, &mms),
            None => shared.error(format!("warm-up export: {reply:?}")),
        },
        Err(error) => shared.error(format!("warm-up export: {error}")),
    }

    let started = Instant::now();
    let shared = Arc::new(Shared {
        started,
        samples: Mutex::new(Vec::new()),
        kinds: Mutex::new(BTreeMap::new()),
        errors: Mutex::new(std::mem::take(&mut *lock(&shared.errors))),
        exported: Mutex::new(std::mem::take(&mut *lock(&shared.exported))),
        pending: Mutex::new(Vec::new()),
    });
    let until = started + load.duration;

    // RSS once a second until stopped.
    let (stop_rss, mut rss_stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut rss = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut rss_stopped => return rss,
                _ = tick.tick() => {
                    if let Some(kib) = rss_kib() {
                        rss.push((started.elapsed().as_secs_f64(), kib));
                    }
                }
            }
        }
    });

    let mut clients = Vec::new();
    for id in 0..load.clients {
        clients.push(tokio::spawn(client(
            load.clone(),
            addr.to_string(),
            shared.clone(),
            id,
            until,
        )));
    }

    // The drop writer, and a watcher that notes when each report appears.
    let drops: Arc<Mutex<Vec<DropFile>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let load = load.clone();
        let drops = drops.clone();
        let shared = shared.clone();
        let blobs = services.blobs.clone();
        tokio::spawn(async move {
            let mut rng = Rng::new(0xD0D0);
            let mut previous = Vec::new();
            let mut k = 0u64;
            let mut next = Instant::now() + load.drop_every / 2;
            loop {
                tokio::time::sleep_until(next.into()).await;
                if Instant::now() >= until {
                    return;
                }
                next += load.drop_every;
                k += 1;
                let (bytes, numbers, middle) = drop_file(k, load.drop_records, &previous, &mut rng);
                let name = format!("load-{k:04}.mrc");
                let key = format!("drop/{}/{name}", load.institution);
                let put = {
                    let blobs = blobs.clone();
                    tokio::task::spawn_blocking(move || blobs.put(&key, &bytes)).await
                };
                match put {
                    Ok(Ok(())) => {
                        lock(&drops).push(DropFile {
                            name,
                            numbers: numbers.clone(),
                            unconvertible: middle,
                            written: started.elapsed().as_secs_f64(),
                            reported: None,
                        });
                        previous = numbers;
                    }
                    Ok(Err(error)) => shared.error(format!("writing drop file {name}: {error}")),
                    Err(error) => shared.error(format!("writing drop file {name}: {error}")),
                }
            }
        })
    };
    let (stop_watch, mut watch_stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let drops = drops.clone();
        let blobs = services.blobs.clone();
        let institution = load.institution.clone();
        tokio::spawn(async move {
            loop {
                let pending: Vec<String> = lock(&drops)
                    .iter()
                    .filter(|d| d.reported.is_none())
                    .map(|d| d.name.clone())
                    .collect();
                for name in pending {
                    let blobs = blobs.clone();
                    let key = report_key(&institution, &name);
                    if let Ok(Ok(Some(report))) =
                        tokio::task::spawn_blocking(move || blobs.get(&key)).await
                    {
                        let at = started.elapsed().as_secs_f64();
                        if let Some(file) = lock(&drops).iter_mut().find(|d| d.name == name) {
                            file.reported = Some((at, report));
                        }
                    }
                }
                tokio::select! {
                    _ = &mut watch_stopped => return,
                    () = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };

    for task in clients {
        if let Err(error) = task.await {
            shared.error(format!("a client task failed: {error}"));
        }
    }
    if let Err(error) = writer.await {
        shared.error(format!("the drop writer failed: {error}"));
    }
    // The last drop files' reports.
    let settle_until = Instant::now() + load.settle_timeout;
    while lock(&drops).iter().any(|d| d.reported.is_none()) && Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_watch.send(());
    let _ = watcher.await;
    let _ = stop_rss.send(());
    let rss = sampler.await.unwrap_or_default();

    let mut report = Report {
        duration: load.duration.as_secs_f64(),
        interval: load.interval.as_secs_f64().max(1.0),
        samples: std::mem::take(&mut *lock(&shared.samples)),
        kinds: std::mem::take(&mut *lock(&shared.kinds)),
        errors: std::mem::take(&mut *lock(&shared.errors)),
        rss,
        drops: std::mem::take(&mut *lock(&drops)),
        exported: std::mem::take(&mut *lock(&shared.exported)),
        pending: std::mem::take(&mut *lock(&shared.pending)),
    };
    report
        .samples
        .sort_by(|a, b| a.at.partial_cmp(&b.at).unwrap_or(std::cmp::Ordering::Equal));
    report
}

/// The `q` quantile of sorted latencies.
mod report;

/// Runs the mixed load (allowing `slack` beyond its duration), prints its table, and
/// checks the outcome against the store ([`Report::verify`] for `institution`); returns
/// the report and the problems found.
pub async fn run_and_verify(
    load: Load,
    addr: &str,
    services: &Services,
    slack: Duration,
) -> (Report, Vec<String>) {
    let institution = load.institution.clone();
    let report = tokio::time::timeout(load.duration + slack, run(load, addr, services))
        .await
        .expect("the load run ends");
    println!("{}", report.table());
    let services = services.clone();
    tokio::task::spawn_blocking(move || {
        let problems = report.verify(&services, &institution);
        (report, problems)
    })
    .await
    .expect("the checks ran")
}

/// Asserts that a mixed load found no problem and sent every kind of export.
pub fn assert_passed(report: &Report, problems: &[String]) {
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        report.kinds.len() == 5,
        "every kind of export was sent: {:?}",
        report.kinds
    );
}
