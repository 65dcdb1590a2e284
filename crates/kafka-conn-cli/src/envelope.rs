//! The JSON envelope of every command's `--json` output, schema version 1
//! (`schema/kconn-v1.json`, documented in `docs/kconn.md`).
//!
//! Stable across releases: within version 1 fields are only added, never
//! renamed, removed or given another type; a breaking change bumps
//! `schema`. Every command has the same top level, and every command that
//! talks to brokers reports them in `brokers`, one element per broker
//! (today the bootstrap brokers it contacted; with the cluster layer,
//! every broker of the cluster), each with `broker`, `address`, `ok`,
//! `warnings` and `error`.

use serde::Serialize;

use crate::config::ConfigReport;
use crate::diagnose::Diagnosis;
use crate::settings::Settings;

/// The version in the `schema` field.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The top level of every `--json` output.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a, B: Serialize, X: Serialize> {
    /// [`SCHEMA_VERSION`].
    pub(crate) schema: u32,
    /// The command (`check`, `api-versions`, ...).
    pub(crate) command: &'static str,
    /// kconn's version.
    pub(crate) kconn_version: &'static str,
    /// Whether the command succeeded (exit status 0).
    pub(crate) ok: bool,
    /// What the `-F` files said, when there were some.
    pub(crate) config: Option<&'a ConfigReport>,
    /// Warnings about the command as a whole (configuration notes).
    pub(crate) warnings: Vec<String>,
    /// Why the command as a whole failed (usage, configuration); a
    /// broker's failure is in its own `error`.
    pub(crate) error: Option<Diagnosis>,
    /// One element per broker.
    pub(crate) brokers: Vec<B>,
    /// The command's own fields.
    #[serde(flatten)]
    pub(crate) extra: X,
}

/// No command-specific fields.
#[derive(Debug, Serialize)]
pub(crate) struct NoExtra {}

impl<'a, B: Serialize, X: Serialize> Envelope<'a, B, X> {
    /// An envelope for a command that connected with `settings`.
    pub(crate) fn new(
        command: &'static str,
        settings: Option<&'a Settings>,
        ok: bool,
        brokers: Vec<B>,
        extra: X,
    ) -> Self {
        let config = settings.and_then(|s| s.config.as_ref());
        Self {
            schema: SCHEMA_VERSION,
            command,
            kconn_version: env!("CARGO_PKG_VERSION"),
            ok,
            config,
            warnings: config.map(ConfigReport::warning_lines).unwrap_or_default(),
            error: None,
            brokers,
            extra,
        }
    }

    /// Prints it as one JSON document on stdout.
    pub(crate) fn print(&self) {
        crate::print_json(self);
    }
}
