#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
mod audit_file;
mod config;
mod counters;
pub mod event;
mod ffi;
mod firewall;
mod jwks;
mod lockout;
pub mod log;
mod monitoring;
mod network;
mod plugin;
mod prometheus;
mod rate_limit;
mod session;
mod state;

use std::path::{Path, PathBuf};

pub use config::ConfigError;
pub use counters::Counters;
pub use monitoring::Publication;
pub use mqtt_sec_acl;
pub use plugin::{Plugin, StartError, Tick};

/// What the ACL lint found in a file the configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFinding {
    /// The ACL file or policy.
    pub file: PathBuf,
    /// The finding (error or warning, with its line).
    pub finding: mqtt_sec_acl::Finding,
}

/// Checks a configuration without a broker, as the plugin's start would
/// (the file and every file it names), and runs the ACL lint over its rules,
/// which the plugin itself does not: the lint is quadratic in the rules
/// (about a minute for 100,000), too slow for a broker's start or reload.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("acl"), "user alice\ntopic readwrite alice/#\ntopic read alice/#\n")?;
/// let config = dir.path().join("mqtt-sec.toml");
/// std::fs::write(&config, "[acl]\nacl_file = \"acl\"\n")?;
/// let findings = mqtt_sec_mosquitto::check_config(&config)?;
/// assert_eq!(findings.len(), 1, "the read rule is dead: readwrite covers it");
/// std::fs::write(&config, "[acl]\nacl_file = \"acl\"\nallow_all = true\n")?;
/// let error = mqtt_sec_mosquitto::check_config(&config).unwrap_err();
/// assert!(error.to_string().ends_with("acl: set exactly one of acl_file, policy or allow_all = true"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ConfigError`], naming the file, line and field.
pub fn check_config(path: &Path) -> Result<Vec<ConfigFinding>, ConfigError> {
    let source = config::Source::read(path)?;
    let mut findings = Vec::new();
    state::State::from_source(&source, Some(&mut findings), &jwks::Endpoints::default())?;
    Ok(findings)
}

/// As [`check_config`], for configuration text that is not (yet) a file:
/// `path` names it in errors and relative paths in it are relative to its
/// directory; the files the text names are read.
///
/// # Errors
/// As [`check_config`].
pub fn check_config_str(text: &str, path: &Path) -> Result<Vec<ConfigFinding>, ConfigError> {
    let source = config::Source {
        path: path.to_owned(),
        text: text.to_owned(),
    };
    let mut findings = Vec::new();
    state::State::from_source(&source, Some(&mut findings), &jwks::Endpoints::default())?;
    Ok(findings)
}
