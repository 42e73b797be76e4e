//! The configuration file of `bibgate serve` (`--config FILE`, or `BIBGATE_CONFIG`): the
//! settings `serve` takes as flags, in TOML, under the flags' names. A flag given on the
//! command line (or through its environment variable) wins over the file; the file wins
//! over the flags' defaults. The Debian package installs one as
//! `/etc/bibgate/bibgate.toml`, which `bibgate.service` passes.
//!
//! ```toml
//! data-dir = "/var/lib/bibgate"
//! listen = "0.0.0.0:5500"
//! metrics = "127.0.0.1:9500"
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The file's settings; each is optional, unknown keys are refused.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeConfig {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--metrics`.
    pub metrics: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-listen`.
    pub tls_listen: Option<String>,
    /// `--no-plain`.
    pub no_plain: Option<bool>,
    /// `--no-processor`.
    pub no_processor: Option<bool>,
    /// `--drop-chunk`.
    pub drop_chunk: Option<std::num::NonZeroUsize>,
    /// `--drop-settle-ms`.
    pub drop_settle_ms: Option<u64>,
}

/// The most a configuration file may hold (it is a few lines).
const MAX_BYTES: u64 = 64 * 1024;

/// Reads and parses the configuration file at `path`.
pub fn load(path: &Path) -> anyhow::Result<ServeConfig> {
    use std::io::Read;
    let shown = path.display().to_string();
    let file = std::fs::File::open(path)
        .with_context(|| format!("could not open the configuration file {shown:?}"))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("could not read the configuration file {shown:?}"))?;
    if text.len() as u64 > MAX_BYTES {
        anyhow::bail!("the configuration file {shown:?} is larger than {MAX_BYTES} bytes");
    }
    toml::from_str(&text).with_context(|| format!("the configuration file {shown:?} is not valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_read_and_unknown_keys_are_refused() {
        let config: ServeConfig = toml::from_str(
            r#"
            data-dir = "/var/lib/bibgate"
            listen = "0.0.0.0:5500"
            metrics = "127.0.0.1:9500"
            tls-cert = "/etc/bibgate/cert.pem"
            tls-key = "/etc/bibgate/key.pem"
            tls-listen = "0.0.0.0:5501"
            no-plain = true
            no-processor = false
            drop-chunk = 500
            drop-settle-ms = 3000
            "#,
        )
        .unwrap();
        assert_eq!(
            config.data_dir.as_deref(),
            Some(Path::new("/var/lib/bibgate"))
        );
        assert_eq!(config.metrics.as_deref(), Some("127.0.0.1:9500"));
        assert_eq!(config.no_plain, Some(true));
        assert_eq!(config.drop_chunk.map(|n| n.get()), Some(500));
        assert_eq!(config.drop_settle_ms, Some(3000));
        assert!(toml::from_str::<ServeConfig>("lisen = \"x\"").is_err());
        assert!(toml::from_str::<ServeConfig>("drop-chunk = 0").is_err());
        assert_eq!(
            toml::from_str::<ServeConfig>("").unwrap(),
            ServeConfig::default()
        );
    }
}
