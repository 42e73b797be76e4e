//! Paths and helpers shared by the black-box tests.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shared material: `$BIBGATE_SHARED`, else `../shared` beside the repository.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("BIBGATE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"));
    assert!(
        dir.join("corpus/SOURCES.md").exists(),
        "the shared corpus is missing at {}; set BIBGATE_SHARED",
        dir.display()
    );
    dir
}

/// The corpus folder.
pub fn corpus() -> PathBuf {
    shared().join("corpus")
}

/// One row of a SOURCES.md statistics table.
#[derive(Debug, Clone)]
pub struct CorpusFile {
    /// Path relative to the corpus folder.
    pub path: String,
    /// real, odd, broken, synthetic, synthetic-broken.
    pub kind: String,
    /// bin or xml.
    pub format: String,
    /// Records counted by the corpus checker.
    pub records: usize,
}

/// Every file listed in SOURCES.md.
pub fn corpus_files() -> Vec<CorpusFile> {
    let text = std::fs::read_to_string(corpus().join("SOURCES.md")).unwrap();
    let mut section = String::new();
    let mut files = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### ") {
            section = name.trim().to_string();
            continue;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        files.push(CorpusFile {
            path: format!("{section}/{}", cells[1].trim_matches('`')),
            kind: cells[2].to_string(),
            format: cells[3].to_string(),
            records: cells[5].parse().unwrap(),
        });
    }
    files
}
