//! `bibgate send`: a Connexion client that sends each record of a file to a gateway.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bibgate_gateway::LengthEncoding;
use bibgate_marc::decode::Charset;
use bibgate_marc::iso2709::Mode;
use bibgate_marc::{Source, iso2709};
use clap::ValueEnum;

use super::serve::runtime;

/// How `bibgate send` writes field lengths.
#[derive(Clone, Copy, ValueEnum)]
enum LengthEncodingArg {
    /// One byte per length, like the Connexion desktop client.
    Byte,
    /// Decimal digits, like the Connexion browser.
    Decimal,
}

impl LengthEncodingArg {
    fn encoding(self) -> LengthEncoding {
        match self {
            LengthEncodingArg::Byte => LengthEncoding::Byte,
            LengthEncodingArg::Decimal => LengthEncoding::Decimal,
        }
    }
}

/// Arguments of `bibgate send`.
#[derive(clap::Args)]
pub struct Args {
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
    length_encoding: LengthEncodingArg,
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
}

/// Sends each record of a file on its own connection; prints each reply.
/// Exit code 0 when every reply is a success, 1 otherwise, 2 on a connection error.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let tls = args
        .tls
        .then(|| bibgate_gateway::TlsClient::new(&args.host, args.tls_ca.as_deref()))
        .transpose()?;
    let timeout = Duration::from_secs(args.timeout);
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("could not open {:?}", args.file.display().to_string()))?;
    let source = Source::sniffed(std::io::BufReader::new(file), Mode::Lenient, Charset::Auto)
        .with_context(|| format!("could not read {:?}", args.file.display().to_string()))?;
    let addr = format!("{}:{}", args.host, args.port);
    let runtime = runtime()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_ok = true;
    let mut sent = 0usize;
    for item in source {
        let bytes = if item.raw.is_empty() {
            // MARCXML: send the record as ISO 2709 (UTF-8).
            match &item.outcome {
                Ok(parsed) => {
                    let mut bytes = Vec::new();
                    match iso2709::write_record(&parsed.decoded.record, &mut bytes) {
                        Ok(()) => bytes,
                        Err(error) => {
                            writeln!(out, "record {}: not sent: {error}", item.index)?;
                            all_ok = false;
                            continue;
                        }
                    }
                }
                Err(error) => {
                    writeln!(out, "record {}: not sent: {error}", item.index)?;
                    all_ok = false;
                    continue;
                }
            }
        } else {
            item.raw
        };
        let reply = runtime.block_on(async {
            match &tls {
                None => {
                    bibgate_gateway::send(
                        &addr,
                        &args.logon,
                        &args.password,
                        &bytes,
                        args.length_encoding.encoding(),
                        timeout,
                    )
                    .await
                }
                Some(tls) => {
                    bibgate_gateway::send_tls(
                        &addr,
                        tls,
                        &args.logon,
                        &args.password,
                        &bytes,
                        args.length_encoding.encoding(),
                        timeout,
                    )
                    .await
                }
            }
        });
        sent += 1;
        match reply {
            Ok(text) => {
                all_ok &= text.starts_with("The record has been processed successfully.");
                writeln!(out, "record {}: {text}", item.index)?;
            }
            Err(bibgate_gateway::Error::Encode(error)) => {
                all_ok = false;
                writeln!(out, "record {}: not sent: {error}", item.index)?;
            }
            Err(error) => {
                out.flush()?;
                eprintln!("bibgate: record {}: {error}", item.index);
                if let bibgate_gateway::Error::Connect { .. } = error {
                    eprintln!(
                        "bibgate: is `bibgate serve` running there? Check the host, the port \
                         (the gateway listens on {} unless --listen says otherwise), and any \
                         firewall between this machine and it.",
                        bibgate_gateway::DEFAULT_PORT
                    );
                }
                return Ok(ExitCode::from(2));
            }
        }
    }
    out.flush()?;
    if sent == 0 && all_ok {
        eprintln!("bibgate: no records in {}", args.file.display());
        return Ok(ExitCode::from(1));
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
