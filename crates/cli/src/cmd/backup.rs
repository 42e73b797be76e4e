//! `bibgate backup`, `bibgate restore` and `bibgate verify`: an online copy of a data
//! directory with a manifest of SHA-256 sums, its restore into an empty data directory,
//! and a consistency check.
//!
//! A backup folder holds `bibgate.sqlite` (a `VACUUM INTO` snapshot taken while `serve`
//! keeps answering), `blobs/` (every blob, copied after the snapshot, so every result in
//! it finds its raw bytes: blobs are written before the results that name them) and
//! [`MANIFEST`]: one `<sha256>  <path>` line per file, as `sha256sum -c` reads them, then a
//! trailer line with the number of files and the SHA-256 of the lines above it, so a
//! truncated or edited manifest is refused too.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::data::Data;

/// The manifest's file name in a backup folder.
pub const MANIFEST: &str = "MANIFEST.sha256";

/// The database's name in a data directory and in a backup folder.
const DATABASE: &str = "bibgate.sqlite";

/// The start of the manifest's trailer line.
const TRAILER: &str = "# bibgate backup: ";

/// Names starting with this are temporary files of unfinished blob writes (never copied).
const TEMP_PREFIX: &str = ".bibgate-tmp-";

/// Arguments of `bibgate backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The backup folder to create (it must not exist, or be empty).
    #[arg(long)]
    to: PathBuf,
}

/// Arguments of `bibgate restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A backup folder written by `bibgate backup`.
    #[arg(long)]
    from: PathBuf,
}

/// What a backup on AWS uses instead.
pub const AWS_INSTEAD: &str = "backup, restore and verify work on a data directory; on AWS use \
     DynamoDB point-in-time recovery for the table and S3 versioning for the bucket (README, \"Operating Bibgate\")";

fn shown(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Creates `dir` owner-only, or accepts an existing empty folder.
fn create_empty_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{what} {} is not empty", shown(dir));
            }
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            bibgate_store_local::create_private_dir_all(dir)
                .with_context(|| format!("could not create {what} {}", shown(dir)))
        }
        Err(err) => Err(err).with_context(|| format!("could not read {what} {}", shown(dir))),
    }
}

/// Creates the new file `path` readable and writable by its owner only.
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Copies `from` to the new file `to` (owner-only, synced), returning its SHA-256 and size.
fn copy_hashed(from: &mut impl Read, to: &Path) -> io::Result<(String, u64)> {
    let mut out = create_private_file(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        size += n as u64;
    }
    out.sync_all()?;
    Ok((hex(&hasher.finalize()), size))
}

/// The SHA-256 of a file.
fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Syncs a folder's entries (new files' names) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The regular files under `root` as `/`-separated relative paths, sorted; temporary files
/// of unfinished writes are left out, and so are other kinds of entries (symbolic links and
/// FIFOs set aside from drop folders), which are counted in `skipped`.
fn list_files(root: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // Folders are never removed by the store; another process may still do it.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).with_context(|| format!("could not list {}", shown(&dir))),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("could not list {}", shown(&dir)))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                skipped.push(format!(
                    "{prefix}{} (name not UTF-8)",
                    name.to_string_lossy()
                ));
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let relative = format!("{prefix}{name}");
            if name.contains(['\n', '\r', '\\']) {
                skipped.push(format!("{relative:?} (a name the manifest cannot hold)"));
                continue;
            }
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("could not read {relative:?}"));
                }
            };
            if kind.is_dir() {
                pending.push((entry.path(), format!("{relative}/")));
            } else if kind.is_file() {
                files.push(relative);
            } else {
                skipped.push(format!("{relative} (not a regular file)"));
            }
        }
    }
    files.sort();
    Ok((files, skipped))
}

/// `bibgate backup --to DIR`.
pub fn backup(data: &Data, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (sqlite, folder) = data.local_stores()?;
    let to = &args.to;
    create_empty_dir(to, "backup folder")?;
    let mut manifest = String::new();
    sqlite
        .backup_into(&to.join(DATABASE))
        .context("could not copy the database")?;
    let database_hash = hash_file(&to.join(DATABASE))
        .with_context(|| format!("could not read back {}", shown(&to.join(DATABASE))))?;
    manifest.push_str(&format!("{database_hash}  {DATABASE}\n"));
    let snapshot_seconds = started.elapsed().as_secs_f64();
    // Blobs after the snapshot: a result in it names raw bytes written before it.
    let (files, skipped) = list_files(folder.root())?;
    let blobs_to = to.join("blobs");
    bibgate_store_local::create_private_dir_all(&blobs_to)
        .with_context(|| format!("could not create {}", shown(&blobs_to)))?;
    let mut copied = 0usize;
    let mut bytes = 0u64;
    let mut made_dirs = std::collections::BTreeSet::new();
    for relative in &files {
        let source = folder.root().join(relative);
        let mut input = match File::open(&source) {
            Ok(input) => input,
            // Taken from the inbox or a drop folder since it was listed.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("could not read {}", shown(&source)));
            }
        };
        let target = blobs_to.join(relative);
        if let Some(parent) = target.parent()
            && made_dirs.insert(parent.to_path_buf())
        {
            bibgate_store_local::create_private_dir_all(parent)
                .with_context(|| format!("could not create {}", shown(parent)))?;
        }
        let (hash, size) = copy_hashed(&mut input, &target)
            .with_context(|| format!("could not copy {}", shown(&source)))?;
        manifest.push_str(&format!("{hash}  blobs/{relative}\n"));
        copied += 1;
        bytes += size;
    }
    for dir in made_dirs.iter().chain([&blobs_to, to]) {
        sync_dir(dir).with_context(|| format!("could not sync {}", shown(dir)))?;
    }
    let body_hash = hex(&Sha256::digest(manifest.as_bytes()));
    let lines = copied + 1;
    manifest.push_str(&format!(
        "{TRAILER}{lines} files; sha256 of the lines above {body_hash}\n"
    ));
    let manifest_path = to.join(MANIFEST);
    let mut file = create_private_file(&manifest_path)
        .with_context(|| format!("could not create {}", shown(&manifest_path)))?;
    file.write_all(manifest.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write {}", shown(&manifest_path)))?;
    sync_dir(to).with_context(|| format!("could not sync {}", shown(to)))?;
    let mut err = io::stderr();
    for entry in &skipped {
        writeln!(err, "bibgate: not copied: blobs/{entry}")?;
    }
    println!(
        "backed up {} to {}: database ({snapshot_seconds:.2} s) and {copied} blobs ({bytes} bytes) in {:.2} s",
        data.backend(),
        to.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// One file of a manifest.
struct Entry {
    hash: String,
    path: String,
}

/// Reads and checks a manifest: every line `<64 hex>  <relative path>`, no path twice, no
/// path outside the folder, and the trailer's count and digest matching.
fn read_manifest(text: &str) -> anyhow::Result<Vec<Entry>> {
    let Some(body_end) = text.rfind(TRAILER) else {
        bail!("the manifest has no trailer line (truncated?)");
    };
    let (body, trailer) = text.split_at(body_end);
    let trailer = trailer
        .strip_prefix(TRAILER)
        .and_then(|rest| rest.strip_suffix('\n'))
        .context("the manifest's trailer line is damaged")?;
    let (count, digest) = trailer
        .split_once(" files; sha256 of the lines above ")
        .context("the manifest's trailer line is damaged")?;
    if hex(&Sha256::digest(body.as_bytes())) != digest {
        bail!("the manifest's lines do not match its trailer's sha256 (edited or damaged)");
    }
    let mut entries = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (line_idx, line) in body.lines().enumerate() {
        let line_no = line_idx + 1;
        let (hash, path) = line
            .split_once("  ")
            .with_context(|| format!("manifest line {line_no} is not `<sha256>  <path>`"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            bail!("manifest line {line_no}: {hash:?} is not a sha256");
        }
        let relative = Path::new(path);
        if path.is_empty()
            || !relative
                .components()
                .all(|component| matches!(component, Component::Normal(_)))
        {
            bail!("manifest line {line_no}: {path:?} is not a path inside the backup");
        }
        if path != DATABASE && !path.starts_with("blobs/") {
            bail!("manifest line {line_no}: {path:?} is neither the database nor a blob");
        }
        if !seen.insert(path.to_string()) {
            bail!("manifest line {line_no}: {path:?} is listed twice");
        }
        entries.push(Entry {
            hash: hash.to_string(),
            path: path.to_string(),
        });
    }
    if count != entries.len().to_string() {
        bail!(
            "the manifest lists {} files, its trailer says {count}",
            entries.len()
        );
    }
    if !seen.contains(DATABASE) {
        bail!("the manifest does not list the database");
    }
    Ok(entries)
}

/// `bibgate restore --from DIR` into the (empty or missing) data directory.
pub fn restore(data_dir: &Path, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let from = &args.from;
    let manifest_path = from.join(MANIFEST);
    let text = fs::read_to_string(&manifest_path)
        .with_context(|| format!("could not read the manifest {}", shown(&manifest_path)))?;
    let entries = read_manifest(&text).with_context(|| {
        format!(
            "refusing to restore: the manifest {} is corrupt",
            shown(&manifest_path)
        )
    })?;
    // Every file first, before anything is written.
    for entry in &entries {
        let source = from.join(&entry.path);
        let hash = hash_file(&source)
            .with_context(|| format!("refusing to restore: could not read {}", shown(&source)))?;
        if hash != entry.hash {
            bail!(
                "refusing to restore: {} does not match the manifest (sha256 {hash}, expected {})",
                shown(&source),
                entry.hash
            );
        }
    }
    create_empty_dir(data_dir, "data directory")?;
    let mut made_dirs = std::collections::BTreeSet::new();
    let mut bytes = 0u64;
    for entry in &entries {
        let source = from.join(&entry.path);
        let target = data_dir.join(&entry.path);
        if let Some(parent) = target.parent()
            && made_dirs.insert(parent.to_path_buf())
        {
            bibgate_store_local::create_private_dir_all(parent)
                .with_context(|| format!("could not create {}", shown(parent)))?;
        }
        let mut input =
            File::open(&source).with_context(|| format!("could not read {}", shown(&source)))?;
        let (hash, size) = copy_hashed(&mut input, &target)
            .with_context(|| format!("could not copy {}", shown(&source)))?;
        if hash != entry.hash {
            bail!(
                "{} changed while it was restored: the data directory {} is incomplete, empty it and restore again",
                shown(&source),
                shown(data_dir)
            );
        }
        bytes += size;
    }
    for dir in made_dirs.iter().chain([&data_dir.to_path_buf()]) {
        sync_dir(dir).with_context(|| format!("could not sync {}", shown(dir)))?;
    }
    println!(
        "restored {} files ({bytes} bytes) from {} into {} in {:.2} s; check it with bibgate verify",
        entries.len(),
        from.display(),
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// `bibgate verify`: exit 0 when the data directory is consistent, 1 with each problem.
pub fn verify(data: &Data) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (sqlite, folder) = data.local_stores()?;
    let check = sqlite.check(&folder).context("could not check the store")?;
    let mut err = io::stderr();
    for problem in &check.problems {
        writeln!(err, "bibgate: {problem}")?;
    }
    println!(
        "{}: {} records, {} index entries, {} results; {} in {:.2} s",
        data.backend(),
        check.records,
        check.index_entries,
        check.results,
        if check.problems.is_empty() {
            "consistent".to_string()
        } else {
            format!("{} problems", check.problems.len())
        },
        started.elapsed().as_secs_f64()
    );
    Ok(if check.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
