//! Opening input files as record sources, with a progress bar on long runs.

use std::fs::File;
use std::io::{BufReader, IsTerminal, Read};
use std::path::Path;

use anyhow::Context;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Format, Source};
use indicatif::{ProgressBar, ProgressStyle};

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
