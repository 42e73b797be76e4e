//! The `bibgate` command: the composition root of the command-line program.
//!
//! Exit codes (all commands): 0 success; 1 some records could not be read, converted or
//! imported (each reported on stderr, the rest processed); 2 the command itself failed
//! (bad arguments, a file that cannot be opened, a write error).

/// See the workspace manifest: fewer cycles per record than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod bench;
mod convert;
mod data;
mod demo;
mod import_cmd;
mod input;
mod inspect;
mod policy_cmd;
mod result_cmd;
mod serve;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bibgate_marc::Format;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_matching::BriefLevelTable;
use bibgate_store::{MmsId, Store, TargetZone};
use clap::{Parser, Subcommand, ValueEnum};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ZoneArg {
    /// The institution zone.
    Iz,
    /// The network zone.
    Nz,
}

impl ZoneArg {
    fn target(self) -> TargetZone {
        match self {
            ZoneArg::Iz => TargetZone::Institution,
            ZoneArg::Nz => TargetZone::Network,
        }
    }
}

#[derive(Subcommand)]
enum RecordCommand {
    /// Show a record's current state.
    Show {
        /// The MMS ID.
        mms_id: String,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
    },
    /// List a record's prior versions.
    History {
        /// The MMS ID.
        mms_id: String,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
    },
    /// Make a prior revision current again (the current one is kept as a version).
    Restore {
        /// The MMS ID.
        mms_id: String,
        /// The revision to restore (see history).
        #[arg(long)]
        revision: u64,
        /// Whose zone.
        #[arg(long)]
        institution: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Who restores it.
        #[arg(long, default_value = "cli")]
        user: String,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Add a Connexion integration profile.
    Add {
        /// The institution.
        #[arg(long)]
        institution: String,
        /// The password (generated and printed once when absent).
        #[arg(long)]
        password: Option<String>,
        /// Target zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
        /// Profile id (default `<institution>-connexion`, or a numbered one if taken).
        #[arg(long)]
        id: Option<String>,
    },
    /// List profiles.
    List,
    /// Show one profile.
    Show {
        /// The profile id.
        id: String,
    },
    /// Change one setting (`KEY VALUE`), or rotate the password (`--password NEW`).
    Set {
        /// The profile id.
        id: String,
        /// The setting (logon-id, password, target-zone, check-brief-level, check-005,
        /// skip-cz, lock-timeout, serial-match, nonserial-match, brief-levels, merge-rules).
        #[arg(requires = "value", conflicts_with = "password")]
        key: Option<String>,
        /// Its new value.
        value: Option<String>,
        /// A new password (`-`: read it from the first line of standard input, so it stays
        /// out of the shell history and the process list).
        #[arg(long)]
        password: Option<String>,
        /// With a new password: how long the previous password is still accepted, so the
        /// Connexion clients can be updated one by one (`7d`, `12h`, `30m`, `90s`; `0` ends
        /// it at once).
        #[arg(long, default_value = "7d")]
        keep_previous_for: String,
    },
    /// Delete a profile.
    Delete {
        /// The profile id.
        id: String,
    },
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
    /// Time imports into a fresh embedded store (adds, then merges), with durable commits.
    BenchImport(bench::ImportArgs),
    /// A guided tour: every outcome of a Connexion export through a gateway on loopback, then
    /// a drop file (in a new data directory; without --data-dir, a kept temporary folder).
    Demo,
    /// Create the demo consortium (01DEMO_NETWORK with 01DEMO_ALPHA and 01DEMO_BETA).
    Init {
        /// Password for both demo profiles (generated and printed once when absent).
        #[arg(long)]
        password: Option<String>,
    },
    /// Import records: add, merge or reject each like Alma's Connexion integration.
    Import {
        /// ISO 2709 or MARCXML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The sending institution.
        #[arg(long)]
        institution: String,
        /// Decide in this zone instead of the profile's.
        #[arg(long, value_enum)]
        zone: Option<ZoneArg>,
        /// Decide and report, store nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object per record and line.
        #[arg(long)]
        json: bool,
    },
    /// Show the decision and its trace for each record; nothing is written.
    Explain {
        /// ISO 2709 or MARCXML file.
        file: PathBuf,
        /// The sending institution.
        #[arg(long)]
        institution: String,
        /// Decide in this zone instead of the profile's.
        #[arg(long, value_enum)]
        zone: Option<ZoneArg>,
    },
    /// Show the stored result of an export (host message, outcome, MMS ID, trace); exit 1
    /// when there is none yet.
    Result {
        /// The export id (from the gateway's reply or log, or `<batch>#<index>`).
        export_id: String,
    },
    /// Show, list the history of, or restore records.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Stand-in for a cataloguer opening, leaving or releasing a record in the metadata editor.
    Editor {
        /// open, leave or release.
        #[arg(value_enum)]
        action: admin::EditorAction,
        /// The MMS ID.
        mms_id: String,
        /// The cataloguer's institution (its zone holds the record).
        #[arg(long)]
        institution: String,
        /// The cataloguer.
        #[arg(long, default_value = "cataloguer")]
        user: String,
        /// Institution or network zone.
        #[arg(long, value_enum, default_value = "iz")]
        zone: ZoneArg,
    },
    /// Manage integration profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Run the Connexion Gateway Export server and the import processor (ctrl-c or SIGTERM stops).
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "0.0.0.0:5500")]
        listen: String,
        /// Where records and blobs live (the data directory, or S3 + DynamoDB).
        #[command(flatten)]
        backend: serve::BackendArgs,
        #[command(flatten)]
        processor: serve::ServeProcessorArgs,
        /// An optional TLS listener.
        #[command(flatten)]
        tls: serve::TlsListenArgs,
    },
    /// Run the import processor alone (inbox and drop folders of the data directory) until
    /// ctrl-c or SIGTERM, for a gateway started with `serve --no-processor`.
    Process {
        #[command(flatten)]
        processor: serve::ProcessorArgs,
    },
    /// Write, build, test, publish, activate and roll back per-institution merge policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Send each record of a file to a Connexion gateway, like the Connexion client.
    Send {
        /// ISO 2709 or MARCXML file.
        file: PathBuf,
        /// Gateway host.
        #[arg(long)]
        host: String,
        /// Gateway port.
        #[arg(long, default_value_t = 5500)]
        port: u16,
        /// Local system logon ID (the institution code).
        #[arg(long)]
        logon: String,
        /// Local system password.
        #[arg(long)]
        password: String,
        /// Field length encoding: byte (desktop client) or decimal (browser).
        #[arg(long, value_enum, default_value = "byte")]
        length_encoding: serve::LengthEncodingArg,
        /// Seconds to wait for each reply.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Connect with TLS (to `bibgate serve --tls-cert`, or a TLS front); the server's
        /// certificate must name --host.
        #[arg(long)]
        tls: bool,
        /// PEM file of the certificates to trust for --tls (default: the system's).
        #[arg(long, requires = "tls")]
        tls_ca: Option<PathBuf>,
    },
}

/// The importer over the embedded store, with the merge-policy runner when there is one.
fn importer<'a>(
    data: &'a data::Data,
    policies: Option<&'a bibgate_plugin_host::WasmPolicyRunner>,
) -> bibgate_import::Importer<'a> {
    bibgate_import::Importer::with_policies(
        &data.store,
        policies.map(|r| r as &dyn bibgate_import::PolicyRunner),
    )
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
        Command::BenchImport(args) => bench::run_import(&args),
        Command::Demo => demo::run(&cli.data_dir),
        Command::Init { password } => {
            let data = data::open(&cli.data_dir)?;
            let created = data::init_demo(&data, password.as_deref())?;
            println!(
                "demo consortium ready in {}: network zone {}, institutions {}",
                cli.data_dir.display(),
                data::DEMO_NETWORK,
                data::DEMO_INSTITUTIONS.join(", ")
            );
            for (code, password) in created {
                println!("  Connexion logon {code}, password {password}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            files,
            institution,
            zone,
            dry_run,
            json,
        } => {
            let data = data::open_or_init(&cli.data_dir, &mut std::io::stderr())?;
            let route =
                bibgate_import::route(&data.store, &institution, zone.map(ZoneArg::target))?;
            let policies = policy_cmd::runner(&cli.data_dir, false)?;
            let importer = importer(&data, policies.as_deref());
            let options = import_cmd::Options {
                dry_run,
                json,
                route: &route,
            };
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let mut counts = std::collections::BTreeMap::new();
            let started = std::time::Instant::now();
            for file in &files {
                import_cmd::import_file(
                    &importer,
                    data::blobs(&data),
                    file,
                    &options,
                    &mut out,
                    &mut counts,
                )?;
            }
            out.flush()?;
            let total: usize = counts.values().sum();
            let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            eprintln!(
                "{total} records{} into {} in {:.2} s: {}",
                if dry_run {
                    " decided (dry run)"
                } else {
                    " imported"
                },
                route.zone.code,
                started.elapsed().as_secs_f64(),
                summary.join(", ")
            );
            Ok(if counts.get("failed").copied().unwrap_or(0) > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain {
            file,
            institution,
            zone,
        } => {
            let data = data::open_or_init(&cli.data_dir, &mut std::io::stderr())?;
            let route =
                bibgate_import::route(&data.store, &institution, zone.map(ZoneArg::target))?;
            let policies = policy_cmd::runner(&cli.data_dir, false)?;
            let importer = importer(&data, policies.as_deref());
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            import_cmd::explain_file(&importer, &route, &file, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Result { export_id } => result_cmd::run(&cli.data_dir, &export_id),
        Command::Record(command) => {
            let data = data::open(&cli.data_dir)?;
            let store: &dyn Store = &data.store;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match command {
                RecordCommand::Show {
                    mms_id,
                    institution,
                    zone,
                } => {
                    let zone = admin::zone_of(store, &institution, zone.target())?;
                    admin::record_show(store, &zone, &MmsId(mms_id), &mut out)?;
                }
                RecordCommand::History {
                    mms_id,
                    institution,
                    zone,
                } => {
                    let zone = admin::zone_of(store, &institution, zone.target())?;
                    admin::record_history(store, &zone, &MmsId(mms_id), &mut out)?;
                }
                RecordCommand::Restore {
                    mms_id,
                    revision,
                    institution,
                    zone,
                    user,
                } => {
                    let zone = admin::zone_of(store, &institution, zone.target())?;
                    admin::record_restore(store, &zone, &MmsId(mms_id), revision, &user, &mut out)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Editor {
            action,
            mms_id,
            institution,
            user,
            zone,
        } => {
            let data = data::open(&cli.data_dir)?;
            let zone = admin::zone_of(&data.store, &institution, zone.target())?;
            admin::editor(
                &data.store,
                action,
                &zone,
                &MmsId(mms_id),
                &institution,
                &user,
                &mut std::io::stdout(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(command) => policy_cmd::run(&cli.data_dir, command),
        Command::Serve {
            listen,
            backend,
            processor,
            tls,
        } => serve::serve(&cli.data_dir, &listen, &backend, &processor, &tls),
        Command::Process { processor } => serve::process(&cli.data_dir, &processor),
        Command::Send {
            file,
            host,
            port,
            logon,
            password,
            length_encoding,
            timeout,
            tls,
            tls_ca,
        } => serve::send(&serve::SendArgs {
            file: &file,
            host: &host,
            port,
            logon: &logon,
            password: &password,
            encoding: length_encoding,
            timeout: std::time::Duration::from_secs(timeout),
            tls: tls
                .then(|| bibgate_gateway::TlsClient::new(&host, tls_ca.as_deref()))
                .transpose()?,
        }),
        Command::Profile(command) => {
            let data = data::open(&cli.data_dir)?;
            let store: &dyn Store = &data.store;
            let mut out = std::io::stdout();
            match command {
                ProfileCommand::Add {
                    institution,
                    password,
                    zone,
                    id,
                } => {
                    if store.institution(&institution)?.is_none() {
                        anyhow::bail!("institution {institution:?} does not exist");
                    }
                    let generated = password.is_none();
                    let password = password.unwrap_or_else(bibgate_import::auth::generate_password);
                    let hash = bibgate_import::auth::hash_password(&password)
                        .map_err(anyhow::Error::msg)?;
                    let mut profile =
                        bibgate_import::default_profile(&institution, hash, zone.target());
                    let taken = admin::all_profiles(store)?;
                    profile.id = match id {
                        Some(id) => id,
                        None => (1..)
                            .map(|n| {
                                if n == 1 {
                                    profile.id.clone()
                                } else {
                                    format!("{}-{n}", profile.id)
                                }
                            })
                            .find(|candidate| taken.iter().all(|p| &p.id != candidate))
                            .unwrap_or_default(),
                    };
                    if taken.iter().any(|p| p.id == profile.id) {
                        anyhow::bail!("profile {:?} already exists", profile.id);
                    }
                    store.put_profile(&profile)?;
                    writeln!(out, "profile {} added for {institution}", profile.id)?;
                    if generated {
                        writeln!(out, "  password {password} (shown once)")?;
                    }
                    if store
                        .profiles(&institution)?
                        .iter()
                        .filter(|p| p.kind == bibgate_import::CONNEXION)
                        .count()
                        > 1
                    {
                        writeln!(
                            out,
                            "  warning: {institution} now has more than one Connexion profile; its exports will fail with \"No integration profile found for institution {institution}\" until one is deleted"
                        )?;
                    }
                }
                ProfileCommand::List => {
                    for profile in admin::all_profiles(store)? {
                        writeln!(
                            out,
                            "{}\t{}\t{}\t{}",
                            profile.id,
                            profile.institution,
                            profile.kind,
                            profile.target_zone.as_str()
                        )?;
                    }
                }
                ProfileCommand::Show { id } => {
                    let profile = admin::all_profiles(store)?
                        .into_iter()
                        .find(|p| p.id == id)
                        .with_context(|| format!("profile {id:?} does not exist"))?;
                    admin::profile_show(&profile, &mut out)?;
                }
                ProfileCommand::Set {
                    id,
                    key,
                    value,
                    password,
                    keep_previous_for,
                } => {
                    let keep = admin::parse_duration(&keep_previous_for)?;
                    let profile = match (password, key, value) {
                        (Some(password), _, _) => {
                            let password = admin::password_argument(&password)?;
                            admin::profile_rotate_password(store, &id, &password, keep)?
                        }
                        (None, Some(key), Some(value)) if key == "password" => {
                            let password = admin::password_argument(&value)?;
                            admin::profile_rotate_password(store, &id, &password, keep)?
                        }
                        (None, Some(key), Some(value)) => {
                            admin::profile_set(store, &id, &key, &value)?
                        }
                        _ => anyhow::bail!(
                            "give a setting and its value (KEY VALUE), or --password NEW"
                        ),
                    };
                    admin::profile_show(&profile, &mut out)?;
                }
                ProfileCommand::Delete { id } => {
                    if !store.delete_profile(&id)? {
                        anyhow::bail!("profile {id:?} does not exist");
                    }
                    writeln!(out, "profile {id} deleted")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
