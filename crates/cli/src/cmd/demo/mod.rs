//! `bibgate demo`: a guided tour of what the gateway answers a Connexion client, one step per
//! CARLI outcome, with nothing from outside the repository and no network beyond loopback.
//!
//! The tour creates the demo consortium in a new data directory, then starts the gateway
//! and the processor in this process on a free loopback port, as `bibgate serve` does
//! (results delivered through the store). It exports WorldCat-like records that it builds
//! here: MARC-8 and UTF-8, with OCLC numbers in 001/003, 035 and 019, realistic leaders,
//! 005s and titles. Each record goes through the real Connexion protocol
//! (`bibgate_gateway::send`). Each step prints what was sent, the host message received,
//! and the command that resolves the failure where one exists. A drop file and its report
//! come last. The data directory is kept, to explore afterwards.
//!
//! Where the data goes: the directory `--data-dir` names, when it is new or empty;
//! otherwise a new folder under the system's temporary directory, which is kept and named
//! on screen. Without `--data-dir` the temporary folder is used too, so the default
//! `./bibgate-data` stays for the user's own imports: the tour adds records under
//! institutions of its own making and switches a profile setting off and on again.
//!
//! Exit: 0 when every step got the expected kind of answer; otherwise an error naming the
//! steps that did not (exit 2), after the tour has run to its end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bibgate_engine::messages;
use bibgate_gateway::{Config, LengthEncoding, ProcessorConfig};
use bibgate_inbox::{ResultDelivery, Services};
use bibgate_marc::iso2709::{FIELD_TERMINATOR, RECORD_TERMINATOR, SUBFIELD_DELIMITER};
use bibgate_marc::{Field, Leader, Record};
use bibgate_store::{BlobStore, MmsId, Store};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::data::{self, Backend, Data};

mod books;
mod tour;

use books::*;
use tour::Tour;

/// The institution that exports in the tour.
const ALPHA: &str = data::DEMO_INSTITUTIONS[0];
/// A logon id with no institution behind it.
const UNKNOWN: &str = "01DEMO_GAMMA";
/// The cataloguer who opens a record in the editor (the `bibgate editor` default).
const CATALOGUER: &str = "cataloguer";
/// The drop file's name.
const DROP_FILE: &str = "new-books.mrc";
/// How long one export may take, connection to reply.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the processor may take to import the drop file (it waits for the file to stay
/// unchanged for 2 s first).
const DROP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the gateway and the processor may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `bibgate demo`: runs the tour; `data_dir` is the global `--data-dir`.
pub fn run(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    init_tracing();
    let (dir, why_temporary) = choose_dir(data_dir, data_dir_given())?;
    let data = Data::open(&Backend::Local(dir.clone()))?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let created = data::init_demo(&data, None)?;
    let password = created
        .iter()
        .find(|(code, _)| code == ALPHA)
        .map(|(_, password)| password.clone())
        .with_context(|| format!("the new data directory has no {ALPHA} profile"))?;
    let store = data.store()?.clone();
    let blobs = data.blobs.clone();
    let profile = bibgate_import::connexion_profile(&*store, ALPHA)
        .with_context(|| format!("could not read the Connexion profile of {ALPHA}"))?
        .id;
    let services = Services::new(store.clone(), blobs.clone()).with_delivery(ResultDelivery::Store);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let gateway = Gateway::start(&runtime, services.clone())?;

    let mut tour = Tour {
        runtime: &runtime,
        addr: gateway.addr.clone(),
        store,
        blobs,
        services,
        dir_arg: shell_word(&dir.display().to_string()),
        dir,
        password,
        profile,
        out: std::io::stdout().lock(),
        step: 0,
        exports: 0,
        unexpected: Vec::new(),
        explore: Explore::default(),
    };
    // Every step runs; an unexpected answer is noted and reported at the end. Only an
    // export that gets no answer at all (the gateway is gone), or output that cannot be
    // written, stops the tour; the gateway is stopped either way.
    let outcome = tour
        .introduce(why_temporary.as_deref(), &created, &gateway.addr)
        .and_then(|()| tour.all_steps());
    gateway.stop(&runtime);
    let outcome = outcome.and_then(|()| tour.conclude(started.elapsed()));
    let (steps, unexpected) = (tour.step, std::mem::take(&mut tour.unexpected));
    drop(tour);
    runtime.shutdown_timeout(STOP_TIMEOUT);
    outcome?;
    if !unexpected.is_empty() {
        let lines: Vec<String> = unexpected
            .iter()
            .map(|(step, what)| format!("step {step}: {what}"))
            .collect();
        bail!(
            "{} of {steps} steps did not get the expected answer:\n  {}",
            failed_steps(&unexpected),
            lines.join("\n  ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How many steps are among `unexpected`.
fn failed_steps(unexpected: &[(usize, String)]) -> usize {
    unexpected
        .iter()
        .map(|(step, _)| step)
        .collect::<BTreeSet<_>>()
        .len()
}

/// Logs go to stderr at `warn` unless `RUST_LOG` says otherwise: the tour's own output is
/// the point, and a warning (a failing processor) should still be seen.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// True when `--data-dir` was given on the command line rather than left at its default.
/// clap knows where each value came from; the parsed `Cli` does not keep it, so the
/// arguments are matched once more.
fn data_dir_given() -> bool {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let Ok(matches) = crate::Cli::command().try_get_matches_from(std::env::args_os()) else {
        return false;
    };
    let from_command_line =
        |m: &clap::ArgMatches| m.value_source("data_dir") == Some(ValueSource::CommandLine);
    from_command_line(&matches)
        || matches
            .subcommand_matches("demo")
            .is_some_and(from_command_line)
}

/// The directory the tour writes to, and why it is a temporary one when it is.
fn choose_dir(data_dir: &Path, given: bool) -> anyhow::Result<(PathBuf, Option<String>)> {
    if !given {
        return Ok((
            new_temporary_dir()?,
            Some(format!(
                "no --data-dir given, so {} stays for your own imports",
                data_dir.display()
            )),
        ));
    }
    if holds_anything(data_dir)? {
        return Ok((
            new_temporary_dir()?,
            Some(format!(
                "{} already holds data, which the demo leaves as it is",
                data_dir.display()
            )),
        ));
    }
    Ok((data_dir.to_path_buf(), None))
}

/// True when `dir` exists and has any entry.
fn holds_anything(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => {
            Err(error).with_context(|| format!("could not read {:?}", dir.display().to_string()))
        }
    }
}

/// Creates `bibgate-demo-<unix seconds>-<pid>[-n]` under the system's temporary directory.
fn new_temporary_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = format!("bibgate-demo-{stamp}-{}", std::process::id());
    for attempt in 0..100 {
        let dir = if attempt == 0 {
            base.join(&name)
        } else {
            base.join(format!("{name}-{attempt}"))
        };
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "could not create a folder in {:?}",
                        base.display().to_string()
                    )
                });
            }
        }
    }
    bail!(
        "could not create a new folder in {:?}: every name tried is taken",
        base.display().to_string()
    )
}

/// A word as the shell reads it: as is when it needs no quoting, else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `10084` as `10,084`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The gateway and the processor, running on the tour's runtime.
struct Gateway {
    addr: String,
    stop_server: oneshot::Sender<()>,
    server: JoinHandle<()>,
    stop_processor: oneshot::Sender<()>,
    processor: JoinHandle<()>,
}

impl Gateway {
    /// Listens on a free loopback port; the processor runs with `bibgate serve`'s settings.
    fn start(runtime: &Runtime, services: Services) -> anyhow::Result<Gateway> {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("could not listen on a loopback port")?;
        let addr = listener
            .local_addr()
            .context("could not read the gateway's port")?
            .to_string();
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let server = runtime.spawn(bibgate_gateway::run(
            listener,
            async move {
                let _ = server_stopped.await;
            },
            services.clone(),
            Config::default(),
        ));
        let (stop_processor, processor_stopped) = oneshot::channel::<()>();
        let processor = {
            let _context = runtime.enter();
            bibgate_gateway::spawn_processor(services, ProcessorConfig::default(), async move {
                let _ = processor_stopped.await;
            })
        };
        Ok(Gateway {
            addr,
            stop_server,
            server,
            stop_processor,
            processor,
        })
    }

    /// Stops the gateway, then the processor after its current pass, each within
    /// [`STOP_TIMEOUT`].
    fn stop(self, runtime: &Runtime) {
        let Gateway {
            stop_server,
            server,
            stop_processor,
            processor,
            ..
        } = self;
        runtime.block_on(async move {
            let _ = stop_server.send(());
            if tokio::time::timeout(STOP_TIMEOUT, server).await.is_err() {
                tracing::warn!("the demo gateway did not stop in time");
            }
            let _ = stop_processor.send(());
            if tokio::time::timeout(STOP_TIMEOUT, processor).await.is_err() {
                tracing::warn!("the demo processor did not stop in time");
            }
        });
    }
}

/// What the last section suggests exploring, filled in as the steps run.
#[derive(Default)]
struct Explore {
    /// The record added in step 1 and merged since.
    merged: Option<String>,
    /// The export that got the multi-match.
    multi_match_export: Option<String>,
}

/// The kind of answer a step expects.
enum Expect<'a> {
    /// Success, with any MMS ID.
    Added,
    /// Success, with this MMS ID.
    MergedInto(Option<&'a str>),
    /// A reply starting with this text.
    StartsWith(&'a str),
    /// Exactly this text.
    Exactly(&'a str),
}

impl Expect<'_> {
    fn describe(&self) -> String {
        match self {
            Expect::Added => format!("\"{}\" with a new MMS ID", messages::SUCCESS),
            Expect::MergedInto(Some(mms_id)) => {
                format!("\"{}\" with MMS ID {mms_id}", messages::SUCCESS)
            }
            Expect::MergedInto(None) => format!("\"{}\"", messages::SUCCESS),
            Expect::StartsWith(start) => format!("a reply starting {start:?}"),
            Expect::Exactly(text) => format!("{text:?}"),
        }
    }

    fn accepts(&self, reply: &str) -> bool {
        match self {
            Expect::Added => mms_id_of(reply).is_some(),
            Expect::MergedInto(expected) => match (mms_id_of(reply), expected) {
                (Some(got), Some(expected)) => got == *expected,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Expect::StartsWith(start) => reply.starts_with(start),
            // A reply that is not a success ends with its export id on a line of its own.
            Expect::Exactly(text) => {
                reply
                    .split_once("\nExport ID: ")
                    .map_or(reply, |(head, _)| head)
                    == *text
            }
        }
    }
}

/// The MMS ID of a success message.
fn mms_id_of(reply: &str) -> Option<&str> {
    reply
        .strip_prefix(messages::SUCCESS)?
        .strip_prefix(messages::MMS_ID_LABEL)
        .map(str::trim)
        .filter(|mms_id| !mms_id.is_empty())
}
