//! `bibgate staff add|list|remove`: the accounts that sign in to the staff console
//! (`bibgate serve --console`). A staff member sees and changes their institution's zone and
//! its network zone; an administrator (`--admin`) sees and changes every zone.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store::{StaffAccount, Store};

use super::now_unix;
use crate::data::Data;

/// Passwords shorter than this are refused.
const MIN_PASSWORD_CHARS: usize = 12;

/// `bibgate staff` subcommands.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a staff account; the password is the first line of standard input.
    Add {
        /// The user name (letters, digits, `.`, `_`, `-`, `@`; at most 64).
        user: String,
        /// The institution whose zone the staff member works in.
        #[arg(long)]
        institution: String,
        /// A consortium administrator: sees and changes every zone.
        #[arg(long)]
        admin: bool,
    },
    /// List the staff accounts.
    List,
    /// Remove a staff account (its open console sessions end at their next request).
    Remove {
        /// The user name.
        user: String,
    },
}

/// `bibgate staff`.
pub fn run(data: &Data, command: Command) -> anyhow::Result<ExitCode> {
    let store: &dyn Store = &**data.store()?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Add {
            user,
            institution,
            admin,
        } => {
            let password = read_password(&mut std::io::stdin().lock())?;
            let account = add(store, &user, &institution, admin, &password)?;
            writeln!(
                out,
                "staff account {} added for {}{}",
                account.user,
                account.institution,
                if account.admin {
                    " (administrator: every zone)"
                } else {
                    ""
                }
            )?;
        }
        Command::List => {
            for account in store.staff_list()? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    account.user,
                    account.institution,
                    if account.admin { "admin" } else { "staff" }
                )?;
            }
        }
        Command::Remove { user } => {
            if !store.remove_staff(&user)? {
                bail!("there is no staff account {user:?} (see bibgate staff list)");
            }
            writeln!(out, "staff account {user} removed")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Checks the name, the institution and the password, hashes it (argon2id) and stores the
/// account.
pub(crate) fn add(
    store: &dyn Store,
    user: &str,
    institution: &str,
    admin: bool,
    password: &str,
) -> anyhow::Result<StaffAccount> {
    if !valid_user(user) {
        bail!("{user:?} is not a user name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`");
    }
    if store.institution(institution)?.is_none() {
        bail!("institution {institution:?} does not exist (see bibgate institution list)");
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password is shorter than {MIN_PASSWORD_CHARS} characters");
    }
    let password_hash =
        bibgate_import::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    let account = StaffAccount {
        user: user.to_string(),
        institution: institution.to_string(),
        admin,
        password_hash,
        created_unix: now_unix(),
    };
    store.add_staff(&account).map_err(|error| match error {
        bibgate_store::Error::AlreadyExists(_) => anyhow::anyhow!(
            "there is a staff account {user:?} already (bibgate staff remove {user} first)"
        ),
        other => other.into(),
    })?;
    Ok(account)
}

/// A user name: 1 to 64 of `[A-Za-z0-9._@-]`.
pub(crate) fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// The first line of `input`, without its line end.
fn read_password(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("could not read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (bibgate staff add reads it from there)");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store_local::SqliteStore;
    use bibgate_test_support::{ALPHA, init_demo};

    #[test]
    fn an_account_is_added_once_with_a_hashed_password() {
        let store = SqliteStore::in_memory().unwrap();
        init_demo(&store);
        let account = add(&store, "ann", ALPHA, false, "correct horse battery").unwrap();
        assert!(account.password_hash.starts_with("$argon2id$"));
        assert!(!account.password_hash.contains("correct horse"));
        assert!(bibgate_import::auth::verify_password(
            "correct horse battery",
            &store.staff("ann").unwrap().unwrap().password_hash
        ));
        let again = add(&store, "ann", ALPHA, true, "another long password").unwrap_err();
        assert!(again.to_string().contains("already"), "{again}");
        assert!(add(&store, "bob", "NOPE", false, "long enough password").is_err());
        assert!(add(&store, "bob", ALPHA, false, "short").is_err());
        assert!(add(&store, "b o b", ALPHA, false, "long enough password").is_err());
    }

    #[test]
    fn the_password_is_the_first_line() {
        let mut input = std::io::Cursor::new(b"secret words here\r\nmore\n".to_vec());
        assert_eq!(read_password(&mut input).unwrap(), "secret words here");
        assert!(read_password(&mut std::io::Cursor::new(b"\n".to_vec())).is_err());
    }
}
