//! The `bibgate` command: the composition root of the command-line program.
//!
//! Exit codes (all commands): 0 success; 1 some records could not be read, converted or
//! imported (each reported on stderr, the rest processed); 2 the command itself failed
//! (bad arguments, a file that cannot be opened, a write error).

mod bench;
mod convert;
mod input;
mod inspect;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_marc::Format;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_matching::BriefLevelTable;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bibgate",
    version,
    about = "Import processor for MARC 21 records exported from OCLC Connexion"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormat {
    /// ISO 2709 (binary MARC).
    Marc,
    /// MARCXML.
    Marcxml,
}

#[derive(Clone, Copy, ValueEnum)]
enum CharsetArg {
    /// Leader/09, with UTF-8 bytes under a MARC-8 leader detected.
    Auto,
    /// Always MARC-8.
    Marc8,
    /// Always UTF-8.
    Utf8,
}

#[derive(clap::Args)]
struct ReadArgs {
    /// Input format; sniffed from the first bytes when not given.
    #[arg(long)]
    from: Option<InputFormat>,
    /// Treat every structural deviation as an error instead of repairing it.
    #[arg(long)]
    strict: bool,
    /// Character set of ISO 2709 input.
    #[arg(long, value_enum, default_value = "auto")]
    charset: CharsetArg,
}

impl ReadArgs {
    fn format(&self) -> Option<Format> {
        self.from.map(|f| match f {
            InputFormat::Marc => Format::Iso2709,
            InputFormat::Marcxml => Format::MarcXml,
        })
    }

    fn mode(&self) -> Mode {
        if self.strict {
            Mode::Strict
        } else {
            Mode::Lenient
        }
    }

    fn charset(&self) -> Charset {
        match self.charset {
            CharsetArg::Auto => Charset::Auto,
            CharsetArg::Marc8 => Charset::Marc8,
            CharsetArg::Utf8 => Charset::Utf8,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Show, per record: OCLC keys, encoding level, 005, encoding and the MARCXML verdict.
    Inspect {
        /// ISO 2709 or MARCXML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// One JSON object per record and line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Convert records to MARCXML, MARC-in-JSON (JSON Lines) or UTF-8 ISO 2709, streaming.
    Convert {
        /// ISO 2709 or MARCXML file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        to: convert::To,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Print records/s and peak memory on stderr at the end.
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Time conversion against yaz-marcdump on the same files, in the same run.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bibgate: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect { files, json, read } => {
            let brief_levels = BriefLevelTable::carli();
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let mut failed = false;
            for path in &files {
                let source = input::open(path, read.format(), read.mode(), read.charset())?;
                if files.len() > 1 && !json {
                    writeln!(out, "== {}", path.display())?;
                }
                for item in source {
                    failed |= item.outcome.is_err();
                    let mut value = inspect::describe(&item, &brief_levels);
                    if json {
                        if files.len() > 1 {
                            value["file"] = serde_json::json!(path.display().to_string());
                        }
                        serde_json::to_writer(&mut out, &value)?;
                        writeln!(out)?;
                    } else {
                        inspect::write_text(&mut out, &value)?;
                    }
                }
            }
            out.flush()?;
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Convert {
            file,
            to,
            output,
            stats,
            read,
        } => {
            let started = std::time::Instant::now();
            let label = file.display().to_string();
            let stderr = std::io::stderr();
            let mut err = stderr.lock();
            let counts = if to == convert::To::Parse {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("could not open {:?}", file.display().to_string()))?;
                convert::parse_only(f, read.mode(), &label, &mut err)?
            } else {
                let source = input::open(&file, read.format(), read.mode(), read.charset())?;
                match output {
                    Some(path) => {
                        let f = std::fs::File::create(&path).with_context(|| {
                            format!("could not create {:?}", path.display().to_string())
                        })?;
                        let mut out = BufWriter::with_capacity(256 * 1024, f);
                        let counts = convert::run(source, to, &label, &mut out, &mut err)?;
                        out.flush()?;
                        counts
                    }
                    None => {
                        let stdout = std::io::stdout();
                        let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
                        let counts = convert::run(source, to, &label, &mut out, &mut err)?;
                        out.flush()?;
                        counts
                    }
                }
            };
            if stats {
                let seconds = started.elapsed().as_secs_f64();
                writeln!(
                    err,
                    "converted {} records ({} skipped, {} flagged) in {:.3} s: {:.0} records/s; peak RSS {} KiB",
                    counts.written,
                    counts.skipped,
                    counts.flagged,
                    seconds,
                    counts.written as f64 / seconds.max(1e-9),
                    bench::peak_rss_kib().map_or("unknown".into(), |k| k.to_string())
                )?;
            }
            Ok(if counts.skipped > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Bench(args) => bench::run(&args),
    }
}
