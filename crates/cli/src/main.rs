//! The `bibgate` command: parses the command line and hands it to the command's module
//! (`cmd/`); storage is opened in `data.rs`, the composition root.
//!
//! Exit codes (all commands): 0 success; 1 some records could not be read, converted or
//! imported (each reported on stderr, the rest processed); 2 the command itself failed
//! (bad arguments, a file that cannot be opened, a write error).

/// See the workspace manifest: fewer cycles per record than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
mod data;

mod input;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::{
    bench, consortium, convert, duplicates, editor, import, init, inspect, policy, profile, record,
    result, send, serve,
};
use data::{Backend, BackendArgs, BackendKind, Data};

#[derive(Parser)]
#[command(
    name = "bibgate",
    version,
    about = "Import processor for MARC 21 records exported from OCLC Connexion"
)]
struct Cli {
    /// Where the embedded store and the raw bytes are kept.
    #[arg(long, global = true, default_value = "./bibgate-data")]
    data_dir: PathBuf,
    /// Where the stores are (every command that reads or writes them).
    #[command(flatten)]
    backend: BackendArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show, per record: OCLC keys, encoding level, 005, encoding and the MARCXML verdict.
    Inspect(inspect::Args),
    /// Convert records to MARCXML, MARC-in-JSON (JSON Lines) or UTF-8 ISO 2709, streaming.
    Convert(convert::Args),
    /// Time conversion against yaz-marcdump on the same files, in the same run.
    Bench(bench::Args),
    /// Time imports into a fresh embedded store (adds, then merges), with durable commits.
    BenchImport(bench::ImportArgs),
    /// A guided tour: every outcome of a Connexion export through a gateway on loopback, then
    /// a drop file (in a new data directory; without --data-dir, a kept temporary folder).
    Demo,
    /// Create the demo consortium (01DEMO_NETWORK with 01DEMO_ALPHA and 01DEMO_BETA).
    Init(init::Args),
    /// Import records: add, merge or reject each like Alma's Connexion integration.
    Import(import::ImportArgs),
    /// Show the decision and its trace for each record; nothing is written.
    Explain(import::ExplainArgs),
    /// Show the stored result of an export (host message, outcome, MMS ID, trace); exit 1
    /// when there is none yet.
    Result(result::Args),
    /// Show, list the history of, or restore records.
    #[command(subcommand)]
    Record(record::Command),
    /// List the OCLC numbers that two or more records of a zone carry (multi-match causes).
    Duplicates(duplicates::Args),
    /// Stand-in for a cataloguer opening, leaving or releasing a record in the metadata editor;
    /// the list of a zone's current locks.
    Editor(editor::Args),
    /// Manage integration profiles.
    #[command(subcommand)]
    Profile(profile::Command),
    /// Create or update a consortium (network zone, institutions, Connexion profiles) from
    /// a TOML file, or print the stored one in that format.
    #[command(subcommand)]
    Consortium(consortium::Command),
    /// List the institutions and network zones, or show one.
    #[command(subcommand)]
    Institution(consortium::InstitutionCommand),
    /// Run the Connexion Gateway Export server and the import processor (ctrl-c or SIGTERM stops).
    Serve(serve::ServeArgs),
    /// Run the import processor alone (inbox and drop folders of the data directory) until
    /// ctrl-c or SIGTERM, for a gateway started with `serve --no-processor`.
    Process(serve::ProcessArgs),
    /// Write, build, test, publish, activate and roll back per-institution merge policies.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Send each record of a file to a Connexion gateway, like the Connexion client.
    Send(send::Args),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        // The reader went away (`bibgate record show … | head`): nothing more to say.
        Err(error) if broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bibgate: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether `error` comes from writing to a pipe whose reader has closed it.
fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // The data directory, unless --backend (or BIBGATE_BACKEND) says otherwise.
    let data_dir = cli.data_dir;
    let backend = Backend::new(&data_dir, &cli.backend)?;
    let local = || -> anyhow::Result<&Backend> {
        match backend.kind() {
            BackendKind::Local => Ok(&backend),
            BackendKind::Aws => anyhow::bail!(
                "this command works on the data directory only (on AWS the Lambda function is the processor)"
            ),
        }
    };
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchImport(args) => bench::run_import(&args),
        Command::Demo => cmd::demo::run(&data_dir),
        Command::Init(args) => init::run(&Data::open(&backend)?, &args),
        Command::Import(args) => import::run_import(
            &Data::open_or_init(&backend, &mut std::io::stderr())?,
            &args,
        ),
        Command::Explain(args) => import::run_explain(
            &Data::open_or_init(&backend, &mut std::io::stderr())?,
            &args,
        ),
        Command::Result(args) => result::run(&Data::open_existing(&backend)?, &args),
        Command::Record(command) => record::run(&Data::open(&backend)?, command),
        Command::Editor(args) => editor::run(&Data::open(&backend)?, &args),
        Command::Duplicates(args) => duplicates::run(&Data::open(&backend)?, &args),
        Command::Profile(command) => profile::run(&Data::open(&backend)?, command),
        Command::Consortium(command) => consortium::run(&Data::open(&backend)?, command),
        Command::Institution(command) => {
            consortium::run_institution(&Data::open(&backend)?, command)
        }
        Command::Serve(args) => serve::serve(&backend, &args),
        Command::Process(args) => serve::process(local()?, &args),
        Command::Policy(command) => policy::run(&backend, command),
        Command::Send(args) => send::run(&args),
    }
}
