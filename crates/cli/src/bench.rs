//! `bibgate bench`: conversion speed against yaz-marcdump, measured in the same run.
//!
//! Both programs run as child processes on the same file with output to /dev/null, pinned
//! to one core when `taskset` is available; each measurement is the median of `--runs`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

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
