//! Opening input files as record sources, with a progress bar on long runs, and the
//! reading options of `inspect` and `convert`.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Format, Source};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};

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

/// How to read the input files (`--from`, `--strict`, `--charset`).
#[derive(clap::Args)]
pub struct ReadArgs {
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
    /// The format given with `--from`, if any.
    pub fn format(&self) -> Option<Format> {
        self.from.map(|f| match f {
            InputFormat::Marc => Format::Iso2709,
            InputFormat::Marcxml => Format::MarcXml,
        })
    }

    /// Strict with `--strict`, lenient otherwise.
    pub fn mode(&self) -> Mode {
        if self.strict {
            Mode::Strict
        } else {
            Mode::Lenient
        }
    }

    /// The character set of `--charset`.
    pub fn charset(&self) -> Charset {
        match self.charset {
            CharsetArg::Auto => Charset::Auto,
            CharsetArg::Marc8 => Charset::Marc8,
            CharsetArg::Utf8 => Charset::Utf8,
        }
    }

    /// Opens `path` with these options.
    pub fn open(&self, path: &Path) -> anyhow::Result<Source<Input>> {
        open(path, self.format(), self.mode(), self.charset())
    }
}

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Counts bytes as they are read, for the progress bar.
pub struct Progress<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

impl<R> Drop for Progress<R> {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The reader a [`Source`] is built on.
pub type Input = BufReader<Progress<File>>;

/// Opens `path` and returns a source of records in the given (or sniffed) format.
pub fn open(
    path: &Path,
    format: Option<Format>,
    mode: Mode,
    charset: Charset,
) -> anyhow::Result<Source<Input>> {
    let file = File::open(path)
        .with_context(|| format!("could not open {:?}", path.display().to_string()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = (len >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {eta}")
        {
            bar.set_style(style);
        }
        bar.set_message(path.display().to_string());
        bar
    });
    let reader = BufReader::with_capacity(256 * 1024, Progress { inner: file, bar });
    let source = match format {
        Some(format) => Source::new(reader, format, mode, charset),
        None => Source::sniffed(reader, mode, charset)
            .with_context(|| format!("could not read {:?}", path.display().to_string()))?,
    };
    Ok(source)
}
