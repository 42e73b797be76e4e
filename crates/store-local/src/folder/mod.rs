//! The [`BlobStore`] port on a local folder.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bibgate_store::{BlobStore, Error, Result, SetAside};

/// Names starting with this are temporary files of unfinished writes: never listed, and
/// refused as key segments.
const TEMP_PREFIX: &str = ".bibgate-tmp-";

/// Makes temporary file names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The [`BlobStore`] port on a folder: key `a/b/c` is the file `<root>/a/b/c`.
///
/// Keys are `/`-separated, non-empty, relative, and have no empty, `.` or `..` segment, no
/// NUL and no `\`; anything else is refused with [`Error::Backend`]. As in any file system,
/// a key cannot be both a blob and the folder of other keys (`a` and `a/b`). A folder
/// whose blobs are all deleted stays, empty, until a blob takes its name; a new folder is
/// synced into its parent before a blob in it is reported written.
///
/// A write returns once it is durable: the file is synced before it gets its name, and its
/// folder after. Concurrent writes into one folder (and the clones of a store) share folder
/// syncs: a write waits for a sync that started after its rename, and runs one itself when
/// none is running (`FolderSync`), so fifty writers cost a few folder syncs, not fifty.
#[derive(Clone, Debug)]
pub struct FolderBlobStore {
    root: PathBuf,
    syncs: Arc<Syncs>,
}

impl FolderBlobStore {
    /// A store rooted at `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<FolderBlobStore> {
        let root = root.into();
        create_private_dir_all(&root).map_err(|err| {
            Error::Backend(format!(
                "could not create blob folder {:?}: {err}",
                root.display().to_string()
            ))
        })?;
        Ok(FolderBlobStore {
            root,
            syncs: Arc::default(),
        })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the temporary files in the whole folder that were last modified more than
    /// `older_than` ago, and returns how many. They are what a process killed in the middle
    /// of a write leaves: a write that is still running has touched its temporary file
    /// within seconds, so with an age of an hour or more this is safe while other processes
    /// write to the same folder. Blobs are never touched.
    pub fn remove_stale_temporaries(&self, older_than: std::time::Duration) -> Result<usize> {
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        remove_stale(&self.root, now, older_than, &mut removed)
            .map_err(|err| io_error("remove stale temporary files", err))?;
        Ok(removed)
    }

    /// The size in bytes of blob `key`, or `None` when there is none (or the name is not a
    /// regular file).
    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        match fs::symlink_metadata(self.file_of(key)?) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(io_error(&format!("read the size of blob {key:?}"), err)),
        }
    }

    /// The file of a key, after checking the key.
    fn file_of(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        let mut path = self.root.clone();
        path.extend(key.split('/'));
        Ok(path)
    }

    /// Creates the folder of blob `key` and its missing parents, each made durable in its
    /// parent (synced), so that a synced blob cannot be lost with a folder whose own entry
    /// was not. Folders are never removed by deletes, so this is rare.
    fn create_folder(&self, dir: &Path, key: &str) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        let failed = |err| io_error(&format!("create the folder of blob {key:?}"), err);
        let mut missing = Vec::new();
        let mut current = Some(dir);
        while let Some(folder) = current {
            if folder == self.root || folder.is_dir() {
                break;
            }
            missing.push(folder);
            current = folder.parent();
        }
        // Concurrent creations of the same folders both succeed.
        create_private_dir_all(dir).map_err(failed)?;
        for folder in missing.iter().rev() {
            let parent = folder.parent().unwrap_or(&self.root);
            self.syncs.sync(parent).map_err(failed)?;
        }
        Ok(())
    }

    /// Writes `bytes` to a fresh, fsynced temporary file in `dir` and returns its path.
    fn write_temp(&self, key: &str, dir: &Path, bytes: &[u8]) -> Result<PathBuf> {
        self.write_temp_with(key, dir, |file| file.write_all(bytes))
            .map(|(temp, ())| temp)
    }

    /// Creates a fresh temporary file in `dir`, lets `write` fill it, fsyncs it and returns
    /// its path with what `write` returned; on any error the file is removed.
    fn write_temp_with<T>(
        &self,
        key: &str,
        dir: &Path,
        write: impl FnOnce(&mut File) -> io::Result<T>,
    ) -> Result<(PathBuf, T)> {
        let name = format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let temp = dir.join(name);
        // A concurrent write freeing an empty folder's name for a blob may remove the folder
        // between its creation and the file's, so try a few times.
        let mut attempts_left = 3;
        let mut file = loop {
            self.create_folder(dir, key)?;
            match create_private_file(&temp) {
                Ok(file) => break file,
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempts_left > 0 => {
                    attempts_left -= 1;
                }
                Err(err) => return Err(io_error(&format!("create blob {key:?}"), err)),
            }
        };
        let written = write(&mut file).and_then(|value| file.sync_all().map(|()| value));
        drop(file);
        match written {
            Ok(value) => Ok((temp, value)),
            Err(err) => {
                let _ = fs::remove_file(&temp);
                Err(io_error(&format!("write blob {key:?}"), err))
            }
        }
    }

    /// `source` copied to a synced temporary file in `dir`: its path and how many bytes.
    fn stream_to_temp(
        &self,
        key: &str,
        dir: &Path,
        source: &mut dyn io::Read,
    ) -> Result<(PathBuf, u64)> {
        let mut failed = None;
        let written = self.write_temp_with(key, dir, |file| {
            bibgate_store::copy_from(source, file, &mut failed)
        });
        match (written, failed) {
            (Err(_), Some(err)) => Err(bibgate_store::stream_error(key, &err)),
            (written, _) => written,
        }
    }

    /// Links the complete temporary file `temp` to `path` (a hard link appears atomically
    /// and fails if the name exists), removes `temp` and syncs `dir`; false when the key was
    /// taken.
    fn link_into_place(&self, key: &str, path: &Path, dir: &Path, temp: &Path) -> Result<bool> {
        let linked = place(temp, path, key, |from, to| fs::hard_link(from, to))?;
        let removed = fs::remove_file(temp);
        match linked {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(err) => return Err(io_error(&format!("link blob {key:?} into place"), err)),
        }
        removed
            .map_err(|err| io_error(&format!("remove the temporary file of blob {key:?}"), err))?;
        self.syncs
            .sync(dir)
            .map_err(|err| io_error(&format!("sync the folder of blob {key:?}"), err))?;
        Ok(true)
    }
}

/// Removes `dir` if it holds nothing but (nested) empty folders; fails on any file.
fn remove_empty_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_tree(&entry.path())?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                "it is the folder of other blobs",
            ));
        }
    }
    fs::remove_dir(dir)
}

/// Frees the name of blob `key` when it is a folder left empty by deletes (a key cannot be
/// both a blob and a folder, but a folder whose blobs are all deleted is no longer one).
/// True when the name was freed.
fn free_name(path: &Path, key: &str) -> Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    match remove_empty_tree(path) {
        Ok(()) => Ok(true),
        // A concurrent write freed it first.
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(err) => Err(io_error(&format!("use {key:?} as a blob key"), err)),
    }
}

/// Gives the complete temporary file `temp` the name `path` with `op` (a rename, or a hard
/// link that fails when the name exists). When the name is a folder left empty by deletes,
/// frees it and tries once more. The outcome of `op`; an error freeing the name removes the
/// temporary file and is returned as the error.
fn place(
    temp: &Path,
    path: &Path,
    key: &str,
    op: impl Fn(&Path, &Path) -> io::Result<()>,
) -> Result<io::Result<()>> {
    let placed = op(temp, path);
    if placed.is_err() {
        match free_name(path, key) {
            Ok(true) => return Ok(op(temp, path)),
            Ok(false) => {}
            Err(err) => {
                let _ = fs::remove_file(temp);
                return Err(err);
            }
        }
    }
    Ok(placed)
}

/// The folders written into by a batch, each with the indexes of its writes, so that each
/// is synced once.
#[derive(Default)]
struct FolderSyncs(Vec<(PathBuf, Vec<usize>)>);

impl FolderSyncs {
    fn add(&mut self, dir: PathBuf, index: usize) {
        match self.0.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, members)) => members.push(index),
            None => self.0.push((dir, vec![index])),
        }
    }

    /// Syncs each folder once; a folder that fails to sync fails every write into it.
    fn sync<T>(self, syncs: &Syncs, outcomes: &mut [Result<T>]) {
        for (dir, members) in self.0 {
            if let Err(err) = syncs.sync(&dir) {
                let shown = dir.display().to_string();
                for i in members {
                    if let Some(outcome) = outcomes.get_mut(i) {
                        *outcome = Err(io_error(
                            &format!("sync blob folder {shown:?}"),
                            io::Error::new(err.kind(), err.to_string()),
                        ));
                    }
                }
            }
        }
    }
}

/// Creates `dir` and its missing parents accessible by the owner only (0700 on Unix): the
/// data directory and the blob folders hold records, password hashes and received files.
/// An existing folder keeps its permissions.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the new file `path`, failing when it exists, readable and writable by the owner
/// only (0600 on Unix), whatever the input it copies was.
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// FNV-1a of a file name, to tell set-aside entries with the same safe name apart.
fn name_hash(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash: u64, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

fn io_error(what: &str, err: io::Error) -> Error {
    Error::Backend(format!("could not {what}: {err}"))
}

fn check_key(key: &str) -> Result<()> {
    let problem = if key.is_empty() {
        Some("it is empty")
    } else if key.starts_with('/') {
        Some("it is absolute")
    } else if key.contains('\0') {
        Some("it contains nul")
    } else if key.contains('\\') {
        Some("it contains a backslash")
    } else if key.split('/').any(str::is_empty) {
        Some("it has an empty segment")
    } else if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        Some("it has a `.` or `..` segment")
    } else if key
        .split('/')
        .any(|segment| segment.starts_with(TEMP_PREFIX))
    {
        Some("it has a segment reserved for temporary files")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Error::Backend(format!(
            "blob key {key:?} is not valid: {problem}"
        ))),
        None => Ok(()),
    }
}

/// The [`FolderSync`] of every folder written into, shared by a store's clones. An entry
/// stays once made: there is one per folder that blobs are written into, a handful per
/// institution.
#[derive(Debug, Default)]
struct Syncs(Mutex<HashMap<PathBuf, Arc<FolderSync>>>);

impl Syncs {
    /// Makes every rename or link done in `dir` before this call durable.
    fn sync(&self, dir: &Path) -> io::Result<()> {
        let folder = lock(&self.0).entry(dir.to_path_buf()).or_default().clone();
        folder.sync(|| sync_dir(dir))
    }
}

/// One folder's syncs, shared by the threads writing into it (group commit): a thread whose
/// rename or link is done takes a number; a sync covers every number taken before it
/// started; a thread waits while a sync runs, and runs the next one itself when its number is
/// not covered yet. A failed sync fails the thread that ran it; the threads waiting for it
/// run one of their own, so every caller either returns after a successful sync that started
/// after its call, or gets an error.
#[derive(Debug, Default)]
struct FolderSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Numbers taken.
    taken: u64,
    /// Every number up to this one is covered by a successful sync.
    covered: u64,
    /// A sync is running.
    running: bool,
    /// Syncs run (for tests).
    runs: u64,
}

impl FolderSync {
    fn sync(&self, sync: impl Fn() -> io::Result<()>) -> io::Result<()> {
        let mut state = lock(&self.state);
        state.taken += 1;
        let number = state.taken;
        loop {
            if state.covered >= number {
                return Ok(());
            }
            if state.running {
                state = self
                    .done
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.running = true;
            state.runs += 1;
            let covers = state.taken;
            drop(state);
            let synced = sync();
            state = lock(&self.state);
            state.running = false;
            if synced.is_ok() {
                state.covered = state.covered.max(covers);
            }
            self.done.notify_all();
            synced?;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes a rename or link in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The entries of folder `dir`; none when it does not exist.
fn entries(dir: &Path) -> io::Result<Option<fs::ReadDir>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// [`FolderBlobStore::remove_stale_temporaries`] under `dir`, recursively.
fn remove_stale(
    dir: &Path,
    now: std::time::SystemTime,
    older_than: std::time::Duration,
    removed: &mut usize,
) -> io::Result<()> {
    let Some(entries) = entries(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            remove_stale(&entry.path(), now, older_than, removed)?;
            continue;
        }
        let temporary = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(TEMP_PREFIX));
        if !temporary || !file_type.is_file() {
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        let stale = now
            .duration_since(modified)
            .is_ok_and(|age| age > older_than);
        if stale {
            match fs::remove_file(entry.path()) {
                Ok(()) => *removed += 1,
                // Removed meanwhile by another sweep.
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// Every file key under `dir` (which is the folder of key prefix `dir_key`), recursively.
fn walk(dir: &Path, dir_key: &str, keys: &mut Vec<String>) -> io::Result<()> {
    let Some(entries) = entries(dir)? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            // Not a name any key maps to.
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = if dir_key.is_empty() {
            name
        } else {
            format!("{dir_key}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            walk(&entry.path(), &key, keys)?;
        } else if file_type.is_file() {
            keys.push(key);
        }
    }
    Ok(())
}

impl BlobStore for FolderBlobStore {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        self.put_many(&[(key, bytes)]).pop().unwrap_or(Ok(()))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.file_of(key)?;
        let dir = path.parent().unwrap_or(&self.root);
        let temp = self.write_temp(key, dir, bytes)?;
        self.link_into_place(key, &path, dir, &temp)
    }

    /// Copied in 64 KiB pieces to a temporary file, then linked into place as
    /// [`BlobStore::put_if_absent`] does.
    fn put_stream_if_absent(&self, key: &str, source: &mut dyn io::Read) -> Result<bool> {
        let path = self.file_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let (temp, _) = self.stream_to_temp(key, &dir, source)?;
        self.link_into_place(key, &path, &dir, &temp)
    }

    /// Each blob to a synced temporary file, renamed into place; then each folder synced once.
    fn put_many(&self, blobs: &[(&str, &[u8])]) -> Vec<Result<()>> {
        let mut outcomes: Vec<Result<()>> = Vec::with_capacity(blobs.len());
        let mut folders = FolderSyncs::default();
        for (i, &(key, bytes)) in blobs.iter().enumerate() {
            let placed = (|| {
                let path = self.file_of(key)?;
                let dir = path.parent().unwrap_or(&self.root).to_path_buf();
                let temp = self.write_temp(key, &dir, bytes)?;
                if let Err(err) = place(&temp, &path, key, |from, to| fs::rename(from, to))? {
                    let _ = fs::remove_file(&temp);
                    return Err(io_error(&format!("move blob {key:?} into place"), err));
                }
                Ok(dir)
            })();
            match placed {
                Ok(dir) => {
                    folders.add(dir, i);
                    outcomes.push(Ok(()));
                }
                Err(err) => outcomes.push(Err(err)),
            }
        }
        folders.sync(&self.syncs, &mut outcomes);
        outcomes
    }

    /// Copied in 64 KiB pieces to a temporary file, synced, renamed into place, and its
    /// folder synced: the memory used does not depend on the size of the input.
    fn put_stream(&self, key: &str, source: &mut dyn io::Read) -> Result<u64> {
        let path = self.file_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let (temp, copied) = self.stream_to_temp(key, &dir, source)?;
        if let Err(err) = place(&temp, &path, key, |from, to| fs::rename(from, to))? {
            let _ = fs::remove_file(&temp);
            return Err(io_error(&format!("move blob {key:?} into place"), err));
        }
        self.syncs
            .sync(&dir)
            .map_err(|err| io_error(&format!("sync the folder of blob {key:?}"), err))?;
        Ok(copied)
    }

    /// Renames each such entry of the folder of `prefix` into the folder of `aside` as
    /// `<hash of its name>-<its name made safe>` (a rename moves a link, not its target,
    /// and never opens a FIFO).
    fn set_aside_non_blobs(&self, prefix: &str, aside: &str) -> Result<Vec<SetAside>> {
        let dir = self.file_of(prefix.trim_end_matches('/'))?;
        let aside_key = aside.trim_end_matches('/');
        let aside_dir = self.file_of(aside_key)?;
        let failed = |err| io_error(&format!("set aside what is not a blob in {prefix:?}"), err);
        let Some(entries) = entries(&dir).map_err(failed)? else {
            return Ok(Vec::new());
        };
        let mut moved = Vec::new();
        for entry in entries {
            let entry = entry.map_err(failed)?;
            let raw_name = entry.file_name();
            let name = raw_name.to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let file_type = entry.file_type().map_err(failed)?;
            let why = if file_type.is_symlink() {
                "it is a symbolic link"
            } else if file_type.is_dir() {
                continue;
            } else if !file_type.is_file() {
                "it is not a regular file (a FIFO, socket or device)"
            } else if raw_name.to_str().is_none() {
                "its name is not UTF-8"
            } else if name.contains('\\') {
                "its name contains a backslash"
            } else {
                continue;
            };
            let safe: String = name
                .chars()
                .map(|c| {
                    if matches!(c, '\\' | '/' | '\u{FFFD}') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            let mut end = safe.len().min(100);
            while !safe.is_char_boundary(end) {
                end -= 1;
            }
            let target = format!(
                "{:016x}-{}",
                name_hash(raw_name.as_encoded_bytes()),
                &safe[..end]
            );
            self.create_folder(&aside_dir, aside_key)?;
            fs::rename(entry.path(), aside_dir.join(&target)).map_err(failed)?;
            self.syncs.sync(&aside_dir).map_err(failed)?;
            moved.push(SetAside {
                name,
                key: format!("{aside_key}/{target}"),
                why: why.to_string(),
            });
        }
        Ok(moved)
    }

    fn open(&self, key: &str) -> Result<Option<Box<dyn io::Read + Send>>> {
        let path = self.file_of(key)?;
        match File::open(&path) {
            // A folder opens on Unix but is not a blob.
            Ok(_) if path.is_dir() => Ok(None),
            Ok(file) => Ok(Some(Box::new(file))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(_) if path.is_dir() => Ok(None),
            Err(err) => Err(io_error(&format!("read blob {key:?}"), err)),
        }
    }

    /// Hard links: a blob's file is complete and synced before it gets its name and is
    /// never written in place afterwards (`put` renames a new file over it), so a link is a
    /// copy. Each target folder is synced once for all the links into it.
    fn copy_if_absent_many(&self, pairs: &[(&str, &str)]) -> Vec<Result<bool>> {
        let mut outcomes: Vec<Result<bool>> = Vec::with_capacity(pairs.len());
        let mut folders = FolderSyncs::default();
        for (i, &(from, to)) in pairs.iter().enumerate() {
            let linked = (|| {
                let source = self.file_of(from)?;
                let target = self.file_of(to)?;
                let dir = target.parent().unwrap_or(&self.root).to_path_buf();
                let mut attempts_left = 3;
                loop {
                    self.create_folder(&dir, to)?;
                    match fs::hard_link(&source, &target) {
                        Ok(()) => return Ok((true, dir)),
                        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                            if attempts_left > 0 && free_name(&target, to)? {
                                attempts_left -= 1;
                                continue;
                            }
                            return Ok((false, dir));
                        }
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {
                            if !source.is_file() {
                                return Err(Error::NotFound(format!("blob {from:?}")));
                            }
                            // The target folder was removed by a concurrent write freeing
                            // its name.
                            if attempts_left == 0 {
                                return Err(io_error(
                                    &format!("copy blob {from:?} to {to:?}"),
                                    err,
                                ));
                            }
                            attempts_left -= 1;
                        }
                        Err(err) => {
                            return Err(io_error(&format!("copy blob {from:?} to {to:?}"), err));
                        }
                    }
                }
            })();
            match linked {
                Ok((copied, dir)) => {
                    if copied {
                        folders.add(dir, i);
                    }
                    outcomes.push(Ok(copied));
                }
                Err(err) => outcomes.push(Err(err)),
            }
        }
        folders.sync(&self.syncs, &mut outcomes);
        outcomes
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.file_of(key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            // A folder is not a blob.
            Err(_) if path.is_dir() => Ok(None),
            Err(err) => Err(io_error(&format!("read blob {key:?}"), err)),
        }
    }

    fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.file_of(key)?;
        let what = || format!("read blob {key:?} from byte {start}");
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(_) if path.is_dir() => return Ok(None),
            Err(err) => return Err(io_error(&what(), err)),
        };
        file.seek(SeekFrom::Start(start))
            .map_err(|err| io_error(&what(), err))?;
        let mut bytes = Vec::new();
        file.take(len)
            .read_to_end(&mut bytes)
            .map_err(|err| io_error(&what(), err))?;
        Ok(Some(bytes))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        if prefix.contains('\0') || prefix.starts_with('/') {
            return Err(Error::Backend(format!(
                "blob prefix {prefix:?} is not valid: it is absolute or contains nul"
            )));
        }
        // Walk only the deepest folder the prefix names in full.
        let dir_key = match prefix.rfind('/') {
            Some(end) => &prefix[..end],
            None => "",
        };
        if !dir_key.is_empty() && check_key(dir_key).is_err() {
            // No valid key lies under such a folder.
            return Ok(Vec::new());
        }
        let mut dir = self.root.clone();
        if !dir_key.is_empty() {
            dir.extend(dir_key.split('/'));
        }
        let mut keys = Vec::new();
        walk(&dir, dir_key, &mut keys)
            .map_err(|err| io_error(&format!("list blobs under {prefix:?}"), err))?;
        keys.retain(|key| key.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let path = self.file_of(key)?;
        // Folders stay when their last blob goes (creating and removing a folder per blob
        // would cost two inodes and a parent sync each time); a put frees the name of a
        // folder left empty when a blob needs it.
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            // A folder is not a blob.
            Err(_) if path.is_dir() => Ok(false),
            Err(err) => Err(io_error(&format!("delete blob {key:?}"), err)),
        }
    }
}

#[cfg(test)]
mod tests;
