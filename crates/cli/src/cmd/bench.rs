//! `bibgate bench`: conversion speed against yaz-marcdump, measured in the same run.
//!
//! Both programs run as child processes on the same file with output to /dev/null, pinned
//! to one core when `taskset` is available; each measurement is the median of `--runs`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::data::{self, Backend, Data};

/// Arguments of `bibgate bench`.
#[derive(clap::Args)]
pub struct Args {
    /// ISO 2709 files to convert (defaults: the LOC sample and two MARC-8 files of the shared corpus).
    files: Vec<PathBuf>,
    /// Runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The yaz-marcdump to compare with.
    #[arg(long, default_value = "yaz-marcdump")]
    yaz: PathBuf,
    /// Where the shared corpus is, for the default files.
    #[arg(long, default_value = "../shared/corpus")]
    corpus: PathBuf,
}

/// Peak resident memory of this process in KiB (Linux), from /proc/self/status.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn pinned(program: &Path) -> Command {
    let taskset = Path::new("/usr/bin/taskset");
    if taskset.exists() {
        let mut command = Command::new(taskset);
        command.arg("-c").arg("0").arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs the command `runs` times and returns the median wall time in seconds and the
/// stderr of the last run.
fn time(mut make: impl FnMut() -> Command, runs: usize) -> anyhow::Result<(f64, String)> {
    let mut times = Vec::with_capacity(runs);
    let mut last_stderr = String::new();
    for _ in 0..runs.max(1) {
        let mut command = make();
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let started = Instant::now();
        let output = command
            .output()
            .with_context(|| format!("could not run {command:?}"))?;
        times.push(started.elapsed().as_secs_f64());
        last_stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], last_stderr))
}

fn is_marc8(path: &Path) -> anyhow::Result<bool> {
    let mut head = [0u8; 24];
    use std::io::Read;
    std::fs::File::open(path)?.read_exact(&mut head)?;
    Ok(head[9] == b' ')
}

/// Runs the benchmark and prints a table.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        vec![
            args.corpus
                .join("loc-booksall-2016/BooksAll.2016.part01.every10th.mrc"),
            args.corpus.join("evergreen/jazz_1k.mrc"),
            args.corpus.join("evergreen/lul_fre_500.mrc"),
        ]
    } else {
        args.files.clone()
    };
    let me = std::env::current_exe().context("could not find the bibgate executable")?;
    if Command::new(&args.yaz).arg("-V").output().is_err() {
        bail!(
            "could not run {:?}; install yaz (apt-get install yaz)",
            args.yaz.display().to_string()
        );
    }
    println!(
        "{:<36} {:>7} {:>10} {:>10} {:>6}  {:>10}  {:>10} {:>10} {:>6}  {:>8}",
        "file",
        "records",
        "parse r/s",
        "yaz -n r/s",
        "ratio",
        "decode r/s",
        "xml r/s",
        "yaz xml",
        "ratio",
        "peak KiB"
    );
    for file in &files {
        let marc8 = is_marc8(file)
            .with_context(|| format!("could not read {:?}", file.display().to_string()))?;
        let (ours_parse, parse_stats) = time(
            || {
                let mut c = pinned(&me);
                c.arg("convert")
                    .arg(file)
                    .args(["--to", "parse", "--stats"]);
                c
            },
            args.runs,
        )?;
        let records: f64 = parse_stats
            .lines()
            .find_map(|l| l.strip_prefix("converted "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .context("bibgate convert printed no statistics")?;
        let (yaz_parse, _) = time(
            || {
                let mut c = pinned(&args.yaz);
                c.arg("-n").arg(file);
                c
            },
            args.runs,
        )?;
        let (ours_decode, _) = time(
            || {
                let mut c = pinned(&me);
                c.arg("convert").arg(file).args(["--to", "none"]);
                c
            },
            args.runs,
        )?;
        let (ours_xml, xml_stats) = time(
            || {
                let mut c = pinned(&me);
                c.arg("convert")
                    .arg(file)
                    .args(["--to", "marcxml", "--stats"]);
                c
            },
            args.runs,
        )?;
        let (yaz_xml, _) = time(
            || {
                let mut c = pinned(&args.yaz);
                if marc8 {
                    c.args(["-f", "MARC-8", "-t", "UTF-8", "-l", "9=97"]);
                }
                c.args(["-o", "marcxml"]).arg(file);
                c
            },
            args.runs,
        )?;
        let peak = xml_stats
            .lines()
            .find_map(|l| l.split("peak RSS ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        println!(
            "{:<36} {:>7} {:>10.0} {:>10.0} {:>5.2}x  {:>10.0}  {:>10.0} {:>10.0} {:>5.2}x  {:>8}",
            name,
            records,
            records / ours_parse,
            records / yaz_parse,
            yaz_parse / ours_parse,
            records / ours_decode,
            records / ours_xml,
            records / yaz_xml,
            yaz_xml / ours_xml,
            peak
        );
    }
    println!(
        "parse = frame and split into fields (bibgate --to parse) vs yaz-marcdump -n; \
         decode = parse, decode characters, check convertibility (--to none)"
    );
    println!(
        "xml = MARCXML to /dev/null (yaz with -f MARC-8 -t UTF-8 on MARC-8 files); \
         ratio = yaz time / bibgate time; median of {} runs, pinned to one core",
        args.runs
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `bibgate bench-import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The file to import (default: the LOC sample of the shared corpus).
    file: Option<PathBuf>,
    /// Where the shared corpus is, for the default file.
    #[arg(long, default_value = "../shared/corpus")]
    corpus: PathBuf,
}

fn import_pass(
    data: &Data,
    route: &bibgate_import::Route,
    file: &Path,
) -> anyhow::Result<(f64, std::collections::BTreeMap<String, usize>)> {
    let importer = bibgate_import::Importer::new(data.store()?.as_ref());
    let options = super::import::Options {
        dry_run: false,
        json: false,
        route,
    };
    let mut counts = std::collections::BTreeMap::new();
    let started = Instant::now();
    super::import::import_file(
        &importer,
        data.blobs.as_ref(),
        file,
        &options,
        &mut std::io::sink(),
        &mut counts,
    )?;
    Ok((started.elapsed().as_secs_f64(), counts))
}

/// Imports a file into a fresh embedded store twice (adds, then the second pass), and the
/// file's OCLC-numbered records twice more into another fresh store (adds, then merges
/// only), with durable commits; prints records/s against the decode-only speed of the same
/// file measured in the same run.
pub fn run_import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.clone().unwrap_or_else(|| {
        args.corpus
            .join("loc-booksall-2016/BooksAll.2016.part01.every10th.mrc")
    });
    let bytes = std::fs::read(&file)
        .with_context(|| format!("could not read {:?}", file.display().to_string()))?;
    let scratch = std::env::temp_dir().join(format!("bibgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;

    // Baseline in the same run: read, decode and check every record, nothing stored.
    let started = Instant::now();
    let mut oclc_records = Vec::new();
    let mut n_records = 0usize;
    let source = bibgate_marc::Source::sniffed(
        &bytes[..],
        bibgate_marc::iso2709::Mode::Lenient,
        bibgate_marc::decode::Charset::Auto,
    )?;
    for item in source {
        n_records += 1;
        if let Ok(parsed) = &item.outcome
            && !bibgate_matching::oclc_keys(&parsed.decoded.record)
                .keys
                .is_empty()
        {
            oclc_records.extend_from_slice(&item.raw);
        }
    }
    let decode_seconds = started.elapsed().as_secs_f64();
    let subset = scratch.join("with-oclc-numbers.mrc");
    std::fs::write(&subset, &oclc_records)?;

    let report = |label: &str, seconds: f64, counts: &std::collections::BTreeMap<String, usize>| {
        let total: usize = counts.values().sum();
        let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "{label:<44} {total:>7} records {seconds:>7.2} s {:>9.0} records/s  ({})",
            total as f64 / seconds,
            summary.join(", ")
        );
        total as f64 / seconds
    };
    println!(
        "file: {} ({})",
        file.display(),
        super::count(n_records, "record")
    );
    println!(
        "{:<44} {n_records:>7} records {decode_seconds:>7.2} s {:>9.0} records/s  (baseline: read, decode, check; nothing stored)",
        "decode only",
        n_records as f64 / decode_seconds
    );
    let data = Data::open(&Backend::Local(scratch.join("all")))?;
    data::init_demo(&data, Some("bench-password"))?;
    let route = bibgate_import::route(data.store()?.as_ref(), data::DEMO_INSTITUTIONS[0], None)?;
    let (seconds, counts) = import_pass(&data, &route, &file)?;
    let adds = report("import into an empty store (adds)", seconds, &counts);
    let (seconds, counts) = import_pass(&data, &route, &file)?;
    report(
        "same file again (OCLC-numbered records merge)",
        seconds,
        &counts,
    );

    let data = Data::open(&Backend::Local(scratch.join("oclc")))?;
    data::init_demo(&data, Some("bench-password"))?;
    let route = bibgate_import::route(data.store()?.as_ref(), data::DEMO_INSTITUTIONS[0], None)?;
    let (seconds, counts) = import_pass(&data, &route, &subset)?;
    report("OCLC-numbered records only: adds", seconds, &counts);
    let (seconds, counts) = import_pass(&data, &route, &subset)?;
    let merges = report("OCLC-numbered records only: merges", seconds, &counts);
    println!(
        "records in the store after both passes: {}",
        data.store()?.count_records(data::DEMO_INSTITUTIONS[0])?
    );
    println!(
        "adds {:.2}x and merges {:.2}x the decode-only speed; targets 20,000 adds/s ({:.2}x) and 10,000 merges/s ({:.2}x); peak RSS {} KiB",
        adds / (n_records as f64 / decode_seconds),
        merges / (n_records as f64 / decode_seconds),
        adds / 20_000.0,
        merges / 10_000.0,
        peak_rss_kib().map_or("unknown".into(), |k| k.to_string())
    );
    println!(
        "commits are durable (SQLite WAL, synchronous=FULL) in batches of 2,000 records; scratch data in {}",
        scratch.display()
    );
    std::fs::remove_dir_all(&scratch)?;
    Ok(ExitCode::SUCCESS)
}
