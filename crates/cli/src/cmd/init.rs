//! `bibgate init`: the demo consortium.

use std::process::ExitCode;

use crate::data::{self, Data};

/// Arguments of `bibgate init`.
#[derive(clap::Args)]
pub struct Args {
    /// Password for both demo profiles (generated and printed once when absent).
    #[arg(long)]
    password: Option<String>,
}

/// Creates the demo consortium (what exists already is kept) and prints the new logons.
pub fn run(data: &Data, args: &Args) -> anyhow::Result<ExitCode> {
    let created = data::init_demo(data, args.password.as_deref())?;
    println!(
        "demo consortium ready in {}: network zone {}, institutions {}",
        data.backend(),
        data::DEMO_NETWORK,
        data::DEMO_INSTITUTIONS.join(", ")
    );
    for (code, password) in created {
        println!("  Connexion logon {code}, password {password}");
    }
    Ok(ExitCode::SUCCESS)
}
