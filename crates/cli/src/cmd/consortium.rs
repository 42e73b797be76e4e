//! `bibgate consortium apply|show` and `bibgate institution list|show`: a consortium (its
//! network zone, its member institutions and one Connexion integration profile each) as a
//! TOML file, applied idempotently on either backend.
//!
//! ```toml
//! network = { code = "01TEST_NETWORK", name = "Test Network" }
//!
//! [[institutions]]
//! code = "01TEST_AAA"
//! name = "Library A"
//! connexion = { target_zone = "iz", check_005 = true }
//! ```
//!
//! `apply` compares the file with what is stored and prints a plan, one line per zone and
//! profile (`create`, `change: what → what`, `unchanged`), then carries it out (not with
//! `--dry-run`). A new profile (`<institution>-connexion`) gets a generated password, printed
//! once on standard output and never written anywhere else. Settings the file leaves out are
//! the defaults for a new profile and left as they are for an existing one; nothing is ever
//! deleted. A numeric code the file leaves out is the next free one (1 for a network zone,
//! 5001 and up for institutions). Unknown keys are an error that names them.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bibgate_store::{Institution, Profile, Store, TargetZone, ZoneKind};
use serde::Deserialize;

use crate::data::Data;

/// `bibgate consortium …`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Create or update the network zone, the institutions and their Connexion profiles as a
    /// TOML file describes them (idempotent); prints the plan and each new password once.
    Apply {
        /// The consortium file.
        file: PathBuf,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the stored consortium in the format `apply` reads.
    Show,
}

/// `bibgate institution …`.
#[derive(clap::Subcommand)]
pub enum InstitutionCommand {
    /// One line per zone: code, kind, network, numeric code, profiles, name.
    List,
    /// A zone and its integration profiles.
    Show {
        /// The institution or network zone code.
        code: String,
    },
}

/// The consortium file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsortiumFile {
    /// The network zone the institutions belong to (optional: stand-alone institutions).
    pub network: Option<NetworkSpec>,
    /// The member institutions.
    #[serde(default)]
    pub institutions: Vec<InstitutionSpec>,
}

/// The network zone of a consortium file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// E.g. `01CARLI_NETWORK`.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The code that ends the zone's MMS IDs (the next free one when absent).
    pub numeric_code: Option<u16>,
}

/// One institution of a consortium file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstitutionSpec {
    /// E.g. `01CARLI_UIU`; also the Connexion logon id.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The code that ends the zone's MMS IDs (the next free one when absent).
    pub numeric_code: Option<u16>,
    /// Its Connexion integration profile (`<code>-connexion`; created with defaults when
    /// absent).
    #[serde(default)]
    pub connexion: ConnexionSpec,
}

/// Settings of a Connexion profile; what is absent keeps its value (or the default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnexionSpec {
    /// `iz` (the institution zone) or `nz` (the network zone).
    pub target_zone: Option<String>,
    /// The 005 comparison (`NOT_ADDED_OLD`).
    pub check_005: Option<bool>,
    /// The brief-level comparison (`NOT_ADDED_BRIEF`).
    pub check_brief_level: Option<bool>,
    /// Refuse records linked to the Community Zone.
    pub skip_community_zone: Option<bool>,
    /// Seconds a lock lasts after its holder left the editor.
    pub lock_timeout_seconds: Option<i64>,
    /// Leader/17 → brief level, in the table's text form.
    pub brief_levels: Option<String>,
    /// Merge rules, in their text form.
    pub merge_rules: Option<String>,
    /// Match method for serials.
    pub serial_match: Option<String>,
    /// Match method for everything else.
    pub nonserial_match: Option<String>,
    /// The logon id the Connexion client sends (default: the institution code).
    pub logon_id: Option<String>,
}

/// What applying a file does to one zone or profile.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Created as described.
    Create,
    /// Changed: each `(setting, from, to)`.
    Change(Vec<(&'static str, String, String)>),
    /// Already as described.
    Unchanged,
}

impl Step {
    fn text(&self) -> String {
        match self {
            Step::Create => "create".into(),
            Step::Unchanged => "unchanged".into(),
            Step::Change(changes) => {
                let changes: Vec<String> = changes
                    .iter()
                    .map(|(what, from, to)| format!("{what} {from} → {to}"))
                    .collect();
                format!("change: {}", changes.join("; "))
            }
        }
    }
}

/// The plan for one file: the zones and profiles as they will be, each with its step.
#[derive(Debug, Default)]
pub struct Plan {
    /// Zones (the network first).
    pub zones: Vec<(Institution, Step)>,
    /// Connexion profiles; a new one's password hash is filled in when applied.
    pub profiles: Vec<(Profile, Step)>,
}

impl Plan {
    /// Whether applying it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.zones
            .iter()
            .map(|(_, step)| step)
            .chain(self.profiles.iter().map(|(_, step)| step))
            .all(|step| *step == Step::Unchanged)
    }
}

/// Reads a consortium file, naming the file and the key in every error.
pub fn parse(text: &str) -> anyhow::Result<ConsortiumFile> {
    let file: ConsortiumFile = toml::from_str(text)?;
    let mut codes = BTreeSet::new();
    for code in file
        .network
        .iter()
        .map(|n| &n.code)
        .chain(file.institutions.iter().map(|i| &i.code))
    {
        if code.is_empty() || code.contains(['/', '\\', '#', ' ']) || !code.is_ascii() {
            bail!("{code:?} cannot be a zone code (ASCII, no spaces, '/', '\\' or '#')");
        }
        if !codes.insert(code.as_str()) {
            bail!("zone {code:?} appears twice");
        }
    }
    Ok(file)
}

fn zone_kind(kind: ZoneKind) -> &'static str {
    match kind {
        ZoneKind::Network => "network zone",
        ZoneKind::Institution => "institution",
    }
}

fn zone_text(target: TargetZone) -> &'static str {
    match target {
        TargetZone::Institution => "iz",
        TargetZone::Network => "nz",
    }
}

/// The next numeric code from `from` up that no zone uses.
fn free_code(used: &mut BTreeSet<u16>, from: u16) -> anyhow::Result<u16> {
    let code = (from..=9999)
        .find(|c| !used.contains(c))
        .context("no free numeric code left (1 to 9999)")?;
    used.insert(code);
    Ok(code)
}

/// Compares `file` with what `store` holds.
pub fn plan(store: &dyn Store, file: &ConsortiumFile) -> anyhow::Result<Plan> {
    let stored = store.institutions()?;
    let mut used: BTreeSet<u16> = stored.iter().map(|i| i.numeric_code).collect();
    let mut plan = Plan::default();
    let mut zone = |plan: &mut Plan,
                    code: &str,
                    name: &str,
                    numeric: Option<u16>,
                    kind: ZoneKind,
                    network: Option<String>|
     -> anyhow::Result<()> {
        let existing = stored.iter().find(|i| i.code == code);
        let step_and_zone = match existing {
            None => {
                let numeric_code = match numeric {
                    Some(n) if used.contains(&n) => {
                        bail!("numeric code {n} of {code} is used by another zone")
                    }
                    Some(n) => {
                        used.insert(n);
                        n
                    }
                    None => free_code(&mut used, if kind == ZoneKind::Network { 1 } else { 5001 })?,
                };
                let zone = Institution {
                    code: code.into(),
                    name: name.into(),
                    kind,
                    network,
                    numeric_code,
                };
                (zone, Step::Create)
            }
            Some(existing) => {
                if existing.kind != kind {
                    bail!(
                        "{code} is stored as a {} and cannot become a {}",
                        zone_kind(existing.kind),
                        zone_kind(kind)
                    );
                }
                let mut changes = Vec::new();
                let mut zone = existing.clone();
                if zone.name != name {
                    changes.push(("name", format!("{:?}", zone.name), format!("{name:?}")));
                    zone.name = name.into();
                }
                if let Some(n) = numeric.filter(|n| *n != zone.numeric_code) {
                    bail!(
                        "{code} has numeric code {} (its MMS IDs end with it); it cannot change to {n}",
                        zone.numeric_code
                    );
                }
                if zone.network != network {
                    let show = |n: &Option<String>| n.clone().unwrap_or_else(|| "none".into());
                    changes.push(("network", show(&zone.network), show(&network)));
                    zone.network = network;
                }
                let step = if changes.is_empty() {
                    Step::Unchanged
                } else {
                    Step::Change(changes)
                };
                (zone, step)
            }
        };
        plan.zones.push(step_and_zone);
        Ok(())
    };
    if let Some(network) = &file.network {
        zone(
            &mut plan,
            &network.code,
            &network.name,
            network.numeric_code,
            ZoneKind::Network,
            None,
        )?;
    }
    let network_code = file.network.as_ref().map(|n| n.code.clone());
    for institution in &file.institutions {
        zone(
            &mut plan,
            &institution.code,
            &institution.name,
            institution.numeric_code,
            ZoneKind::Institution,
            network_code.clone(),
        )?;
    }
    for institution in &file.institutions {
        let id = format!("{}-connexion", institution.code);
        let existing = store
            .profiles(&institution.code)?
            .into_iter()
            .find(|p| p.id == id);
        let step_and_profile = match existing {
            None => {
                let mut profile = bibgate_import::default_profile(
                    &institution.code,
                    String::new(),
                    TargetZone::Institution,
                );
                settle(&mut profile, &institution.connexion)?;
                (profile, Step::Create)
            }
            Some(existing) => {
                let mut profile = existing.clone();
                let changes = settle(&mut profile, &institution.connexion)?;
                let step = if changes.is_empty() {
                    Step::Unchanged
                } else {
                    Step::Change(changes)
                };
                (profile, step)
            }
        };
        if step_and_profile.0.target_zone == TargetZone::Network && network_code.is_none() {
            bail!(
                "{} imports into the network zone, but the file has no network",
                institution.code
            );
        }
        plan.profiles.push(step_and_profile);
    }
    Ok(plan)
}

/// Sets what `spec` says on `profile`; returns what changed. The result must be a profile
/// the import can use (its texts parse).
fn settle(
    profile: &mut Profile,
    spec: &ConnexionSpec,
) -> anyhow::Result<Vec<(&'static str, String, String)>> {
    let mut changes = Vec::new();
    fn set<T: PartialEq + ToString + Clone>(
        changes: &mut Vec<(&'static str, String, String)>,
        name: &'static str,
        slot: &mut T,
        value: Option<&T>,
    ) {
        if let Some(value) = value.filter(|v| *v != slot) {
            changes.push((name, slot.to_string(), value.to_string()));
            *slot = value.clone();
        }
    }
    if let Some(target) = &spec.target_zone {
        let target = match target.as_str() {
            "iz" => TargetZone::Institution,
            "nz" => TargetZone::Network,
            other => bail!("target_zone of {} is {other:?}: iz or nz", profile.id),
        };
        if target != profile.target_zone {
            changes.push((
                "target_zone",
                zone_text(profile.target_zone).into(),
                zone_text(target).into(),
            ));
            profile.target_zone = target;
        }
    }
    // The file's keys are the profile's field names.
    macro_rules! settle {
        ($($field:ident),*) => {
            $(set(&mut changes, stringify!($field), &mut profile.$field, spec.$field.as_ref());)*
        };
    }
    settle!(
        check_005,
        check_brief_level,
        skip_community_zone,
        lock_timeout_seconds,
        brief_levels,
        merge_rules,
        serial_match,
        nonserial_match,
        logon_id
    );
    bibgate_import::import_rules(profile)
        .with_context(|| format!("the connexion settings of {}", profile.id))?;
    Ok(changes)
}

/// Carries out `plan`: zones first (the network before its members), then profiles. A new
/// profile's password is `password` or a generated one; returns `(profile id, logon id,
/// password)` of each new profile.
pub fn apply(
    store: &dyn Store,
    plan: Plan,
    password: Option<&str>,
) -> anyhow::Result<Vec<(String, String, String)>> {
    for (zone, step) in &plan.zones {
        if *step != Step::Unchanged {
            store.put_institution(zone)?;
        }
    }
    let mut created = Vec::new();
    for (mut profile, step) in plan.profiles {
        match step {
            Step::Unchanged => {}
            Step::Change(_) => store.put_profile(&profile)?,
            Step::Create => {
                let password =
                    password.map_or_else(bibgate_import::auth::generate_password, str::to_string);
                profile.password_hash =
                    bibgate_import::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
                store.put_profile(&profile)?;
                created.push((profile.id, profile.logon_id, password));
            }
        }
    }
    Ok(created)
}

/// Prints the plan, one line per zone and profile.
pub fn write_plan(out: &mut impl Write, plan: &Plan) -> std::io::Result<()> {
    for (zone, step) in &plan.zones {
        writeln!(
            out,
            "{} {} {:?} (numeric code {}): {}",
            zone_kind(zone.kind),
            zone.code,
            zone.name,
            zone.numeric_code,
            step.text()
        )?;
    }
    for (profile, step) in &plan.profiles {
        writeln!(out, "profile {}: {}", profile.id, step.text())?;
    }
    Ok(())
}

/// `bibgate consortium …`.
pub fn run(data: &Data, command: Command) -> anyhow::Result<ExitCode> {
    let store: &dyn Store = &**data.store()?;
    let mut out = std::io::stdout().lock();
    match command {
        Command::Apply { file, dry_run } => {
            let text = read_capped(&file)?;
            let parsed =
                parse(&text).with_context(|| format!("{} is not usable", file.display()))?;
            let plan = plan(store, &parsed)?;
            write_plan(&mut out, &plan)?;
            if dry_run {
                writeln!(out, "dry run: nothing was changed")?;
                return Ok(ExitCode::SUCCESS);
            }
            if plan.is_empty() {
                writeln!(out, "nothing to change")?;
                return Ok(ExitCode::SUCCESS);
            }
            let created = apply(store, plan, None)?;
            writeln!(out, "applied on {}", data.backend())?;
            for (id, logon, password) in created {
                writeln!(
                    out,
                    "  {id}: Connexion logon {logon}, password {password} (shown once)"
                )?;
            }
        }
        Command::Show => write_show(&mut out, store)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The most bytes of a consortium file read (a consortium of hundreds of libraries is a
/// few hundred KiB); a larger file, or a link to `/dev/zero`, is refused, not read on.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a consortium file of at most [`MAX_FILE_BYTES`].
fn read_capped(file: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .with_context(|| format!("could not read {}", file.display()))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "{} is larger than {} MiB: not a consortium file",
            file.display(),
            MAX_FILE_BYTES >> 20
        );
    }
    Ok(text)
}

/// A TOML string.
fn quoted(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// The stored consortium in the file format: the network zone (the first, when there are
/// several, each other one as a comment), its institutions with their Connexion settings.
fn write_show(out: &mut impl Write, store: &dyn Store) -> anyhow::Result<()> {
    let zones = store.institutions()?;
    let networks: Vec<&Institution> = zones
        .iter()
        .filter(|z| z.kind == ZoneKind::Network)
        .collect();
    if let Some(network) = networks.first() {
        writeln!(
            out,
            "network = {{ code = {}, name = {}, numeric_code = {} }}",
            quoted(&network.code),
            quoted(&network.name),
            network.numeric_code
        )?;
    }
    for other in networks.iter().skip(1) {
        writeln!(
            out,
            "# another network zone, not shown: {} {:?}",
            other.code, other.name
        )?;
    }
    for zone in zones.iter().filter(|z| z.kind == ZoneKind::Institution) {
        if zone.network.is_some()
            && zone.network.as_deref() != networks.first().map(|n| n.code.as_str())
        {
            writeln!(out, "\n# {} belongs to another network zone", zone.code)?;
            continue;
        }
        writeln!(out, "\n[[institutions]]")?;
        writeln!(out, "code = {}", quoted(&zone.code))?;
        writeln!(out, "name = {}", quoted(&zone.name))?;
        writeln!(out, "numeric_code = {}", zone.numeric_code)?;
        let id = format!("{}-connexion", zone.code);
        if let Some(p) = store.profiles(&zone.code)?.into_iter().find(|p| p.id == id) {
            writeln!(
                out,
                "connexion = {{ target_zone = {}, check_005 = {}, check_brief_level = {}, skip_community_zone = {}, lock_timeout_seconds = {}, logon_id = {}, serial_match = {}, nonserial_match = {}, brief_levels = {}, merge_rules = {} }}",
                quoted(zone_text(p.target_zone)),
                p.check_005,
                p.check_brief_level,
                p.skip_community_zone,
                p.lock_timeout_seconds,
                quoted(&p.logon_id),
                quoted(&p.serial_match),
                quoted(&p.nonserial_match),
                quoted(&p.brief_levels),
                quoted(&p.merge_rules),
            )?;
        }
    }
    Ok(())
}

/// `bibgate institution …`.
pub fn run_institution(data: &Data, command: InstitutionCommand) -> anyhow::Result<ExitCode> {
    let store: &dyn Store = &**data.store()?;
    let mut out = std::io::stdout().lock();
    match command {
        InstitutionCommand::List => {
            for zone in store.institutions()? {
                let profiles = store.profiles(&zone.code)?.len();
                writeln!(
                    out,
                    "{}\t{}\tnetwork {}\tnumeric code {}\t{} profile{}\t{}",
                    zone.code,
                    zone_kind(zone.kind),
                    zone.network.as_deref().unwrap_or("-"),
                    zone.numeric_code,
                    profiles,
                    if profiles == 1 { "" } else { "s" },
                    zone.name
                )?;
            }
        }
        InstitutionCommand::Show { code } => {
            let Some(zone) = store.institution(&code)? else {
                bail!("no institution or network zone {code:?} (bibgate institution list)");
            };
            writeln!(out, "code: {}", zone.code)?;
            writeln!(out, "name: {}", zone.name)?;
            writeln!(out, "kind: {}", zone_kind(zone.kind))?;
            writeln!(out, "network: {}", zone.network.as_deref().unwrap_or("-"))?;
            writeln!(out, "numeric code: {}", zone.numeric_code)?;
            writeln!(out, "records: {}", store.count_records(&zone.code)?)?;
            for profile in store.profiles(&zone.code)? {
                writeln!(
                    out,
                    "profile {}: logon id {}, target zone {}, check-005 {}, check-brief-level {}",
                    profile.id,
                    profile.logon_id,
                    zone_text(profile.target_zone),
                    profile.check_005,
                    profile.check_brief_level
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bibgate_store_local::SqliteStore;

    const FILE: &str = r#"
network = { code = "01TEST_NETWORK", name = "Test Network" }

[[institutions]]
code = "01TEST_AAA"
name = "Library A"
connexion = { target_zone = "iz", check_005 = true }

[[institutions]]
code = "01TEST_BBB"
name = "Library B"
"#;

    #[test]
    fn a_file_is_applied_once_then_unchanged() {
        let store = SqliteStore::in_memory().unwrap();
        let file = parse(FILE).unwrap();
        let first = plan(&store, &file).unwrap();
        assert!(first.zones.iter().all(|(_, s)| *s == Step::Create));
        assert_eq!(first.profiles.len(), 2);
        let created = apply(&store, first, None).unwrap();
        assert_eq!(created.len(), 2);
        assert_eq!(created[0].0, "01TEST_AAA-connexion");
        assert_eq!(created[0].1, "01TEST_AAA");
        let profile = bibgate_import::connexion_profile(&store, "01TEST_AAA").unwrap();
        assert!(bibgate_import::auth::verify_password(
            &created[0].2,
            &profile.password_hash
        ));
        let zone = |code: &str| store.institution(code).unwrap().unwrap();
        assert_eq!(zone("01TEST_NETWORK").numeric_code, 1);
        assert_eq!(zone("01TEST_AAA").numeric_code, 5001);
        assert_eq!(zone("01TEST_BBB").numeric_code, 5002);
        assert_eq!(
            zone("01TEST_AAA").network.as_deref(),
            Some("01TEST_NETWORK")
        );
        assert_eq!(zone("01TEST_NETWORK").kind, ZoneKind::Network);
        let again = plan(&store, &file).unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_change_is_planned_and_applied_and_nothing_else_moves() {
        let store = SqliteStore::in_memory().unwrap();
        apply(
            &store,
            plan(&store, &parse(FILE).unwrap()).unwrap(),
            Some("pw"),
        )
        .unwrap();
        let before = bibgate_import::connexion_profile(&store, "01TEST_AAA").unwrap();
        let changed = FILE.replace(
            "connexion = { target_zone = \"iz\", check_005 = true }",
            "connexion = { check_005 = false }",
        );
        let changed = changed.replace("Library B", "Library Bee");
        let plan = plan(&store, &parse(&changed).unwrap()).unwrap();
        let mut text = Vec::new();
        write_plan(&mut text, &plan).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(
                "network zone 01TEST_NETWORK \"Test Network\" (numeric code 1): unchanged"
            ),
            "{text}"
        );
        assert!(text.contains("institution 01TEST_BBB \"Library Bee\" (numeric code 5002): change: name \"Library B\" → \"Library Bee\""), "{text}");
        assert!(
            text.contains("profile 01TEST_AAA-connexion: change: check_005 true → false"),
            "{text}"
        );
        assert!(
            text.contains("profile 01TEST_BBB-connexion: unchanged"),
            "{text}"
        );
        assert!(
            apply(&store, plan, None).unwrap().is_empty(),
            "no new password"
        );
        let after = bibgate_import::connexion_profile(&store, "01TEST_AAA").unwrap();
        assert!(!after.check_005);
        assert_eq!(
            after.password_hash, before.password_hash,
            "the password stays"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = parse("network = { code = \"N\", name = \"N\", colour = \"red\" }")
            .unwrap_err()
            .to_string();
        assert!(error.contains("colour"), "{error}");
        let error = parse(
            "[[institutions]]\ncode = \"A\"\nname = \"A\"\nconnexion = { check_500 = true }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("check_500"), "{error}");
        let error = parse("[[institutions]]\ncode = \"A\"\nname = \"A\"\n[[institutions]]\ncode = \"A\"\nname = \"B\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("appears twice"), "{error}");
        let store = SqliteStore::in_memory().unwrap();
        let file = parse(
            "[[institutions]]\ncode = \"A\"\nname = \"A\"\nconnexion = { target_zone = \"cz\" }\n",
        )
        .unwrap();
        let error = plan(&store, &file).unwrap_err().to_string();
        assert!(error.contains("\"cz\""), "{error}");
        let file = parse(
            "[[institutions]]\ncode = \"A\"\nname = \"A\"\nconnexion = { target_zone = \"nz\" }\n",
        )
        .unwrap();
        let error = plan(&store, &file).unwrap_err().to_string();
        assert!(error.contains("no network"), "{error}");
    }

    #[test]
    fn a_file_is_read_up_to_its_cap_only() {
        assert!(
            read_capped(std::path::Path::new("/dev/null"))
                .unwrap()
                .is_empty()
        );
        let error = read_capped(std::path::Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("larger than 4 MiB"), "{error}");
    }

    #[test]
    fn show_prints_what_apply_reads() {
        let store = SqliteStore::in_memory().unwrap();
        apply(
            &store,
            plan(&store, &parse(FILE).unwrap()).unwrap(),
            Some("pw"),
        )
        .unwrap();
        let mut shown = Vec::new();
        write_show(&mut shown, &store).unwrap();
        let shown = String::from_utf8(shown).unwrap();
        let reread = parse(&shown).unwrap_or_else(|e| panic!("{e:#}\n{shown}"));
        assert_eq!(reread.institutions.len(), 2);
        assert!(plan(&store, &reread).unwrap().is_empty(), "{shown}");
    }
}
