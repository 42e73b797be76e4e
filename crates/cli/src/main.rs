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
mod console;
mod data;

mod input;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use cmd::{
    backup, bench, bench_console, consortium, convert, duplicates, editor, import, init, inspect,
    policy, profile, record, redrive, result, results, send, serve, staff,
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
    /// Time the staff console's imports list and record page with many records and results
    /// (embedded store), against a baseline with few.
    BenchConsole(bench_console::Args),
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
    /// An institution's import results, newest first, each failure with what to do next.
    Results(results::Args),
    /// Show, list the history of, or restore records.
    #[command(subcommand)]
    Record(record::Command),
    /// List the OCLC numbers that two or more records of a zone carry (multi-match causes).
    Duplicates(duplicates::Args),
    /// Stand-in for a cataloguer opening, leaving or releasing a record in the metadata editor;
    /// the list of a zone's current locks.
    Editor(editor::Args),
    /// Move the dead-letter queue's messages back to the import queue (AWS backend).
    Redrive(redrive::Args),
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
    /// Staff accounts of the console (`serve --console`): add (password on stdin), list,
    /// remove.
    #[command(subcommand)]
    Staff(staff::Command),
    Serve(serve::ServeArgs),
    /// Run the import processor alone (inbox and drop folders of the data directory) until
    /// ctrl-c or SIGTERM, for a gateway started with `serve --no-processor`.
    Process(serve::ProcessArgs),
    /// Write, build, test, publish, activate and roll back per-institution merge policies.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Send each record of a file to a Connexion gateway, like the Connexion client.
    Send(send::Args),
    /// Copy the data directory while `serve` runs: a database snapshot, the blobs and a
    /// manifest of SHA-256 sums (local backend; on AWS, PITR and S3 versioning).
    Backup(backup::BackupArgs),
    /// Restore a backup into an empty data directory, after checking its manifest.
    Restore(backup::RestoreArgs),
    /// Check the data directory: database integrity, every result's raw bytes, the OCLC
    /// index against the records (exit 1 with each problem).
    Verify,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match run(cli, &matches) {
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

/// The local backend, or the error that names what to use on AWS instead.
fn aws_instead(backend: &Backend) -> anyhow::Result<&Backend> {
    match backend.kind() {
        BackendKind::Local => Ok(backend),
        BackendKind::Aws => anyhow::bail!(backup::AWS_INSTEAD),
    }
}

fn run(mut cli: Cli, matches: &ArgMatches) -> anyhow::Result<ExitCode> {
    if let Command::Serve(args) = &mut cli.command {
        // `serve --config FILE`: the file's settings, except those given as flags.
        let serve = matches.subcommand_matches("serve");
        let explicit = |id: &str| {
            matches!(
                serve.and_then(|m| m.value_source(id)),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        if let Some(data_dir) = args.apply_config(&explicit)?
            && !explicit("data_dir")
        {
            cli.data_dir = data_dir;
        }
    }
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
        Command::BenchConsole(args) => bench_console::run(&args),
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
        Command::Results(args) => results::run(&Data::open_existing(&backend)?, &args),
        Command::Record(command) => record::run(&Data::open(&backend)?, command),
        Command::Editor(args) => editor::run(&Data::open(&backend)?, &args),
        Command::Duplicates(args) => duplicates::run(&Data::open(&backend)?, &args),
        Command::Profile(command) => profile::run(&Data::open(&backend)?, command),
        Command::Consortium(command) => consortium::run(&Data::open(&backend)?, command),
        Command::Institution(command) => {
            consortium::run_institution(&Data::open(&backend)?, command)
        }
        Command::Staff(command) => staff::run(&Data::open_existing(&backend)?, command),
        Command::Serve(args) => serve::serve(&backend, &args),
        Command::Process(args) => serve::process(local()?, &args),
        Command::Policy(command) => policy::run(&backend, command),
        Command::Send(args) => send::run(&args),
        Command::Redrive(args) => redrive::run(&Data::open(&backend)?, &args),
        Command::Backup(args) => {
            backup::backup(&Data::open_existing(aws_instead(&backend)?)?, &args)
        }
        Command::Restore(args) => {
            aws_instead(&backend)?;
            backup::restore(&data_dir, &args)
        }
        Command::Verify => backup::verify(&Data::open_existing(aws_instead(&backend)?)?),
    }
}
