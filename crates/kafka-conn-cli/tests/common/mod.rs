//! Helpers shared by the tests that run the built `kconn`: broker
//! variables (skip or fail when missing), running kconn with a clean
//! environment, and checking every `--json` output against the schema in
//! `schema/kconn-v1.json`.
#![allow(dead_code, unreachable_pub)]

pub mod proxy;

use std::process::{Command, Output};

pub use serde_json::Value;

/// A non-empty environment variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A broker variable, or `None` after printing why the test is skipped
/// (panics instead when brokers are required).
pub fn broker_var(name: &str) -> Option<String> {
    if let Some(v) = var(name) {
        return Some(v);
    }
    let why = format!(
        "{name} is not set: start the test brokers with scripts/broker-up and `. .broker-state/env`"
    );
    if var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Some("1") {
        panic!("KAFKA_CONN_REQUIRE_BROKERS=1 but {why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// A SASL broker variable: also skipped when the env file says SASL is unavailable.
pub fn sasl_var(name: &str) -> Option<String> {
    if let Some(reason) = var("KAFKA_SASL_SKIP_REASON") {
        eprintln!("SKIPPED: SASL broker unavailable: {reason}");
        return None;
    }
    broker_var(name)
}

/// Several broker variables at once.
pub fn broker_vars<const N: usize>(names: [&str; N]) -> Option<[String; N]> {
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = broker_var(name)?;
    }
    Some(out)
}

/// `kconn` with `args`, with no KCONN_* variables inherited; `env` adds some.
pub fn kconn_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kconn"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KCONN_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run kconn");
    eprintln!(
        "$ kconn {}\n--- stdout\n{}--- stderr\n{}--- exit {:?}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    out
}

pub fn kconn(args: &[&str]) -> Output {
    kconn_env(args, &[])
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs with `--json`, parses stdout as one JSON object and checks it
/// against the schema.
pub fn json_env(args: &[&str], env: &[(&str, &str)]) -> (Value, Option<i32>) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = kconn_env(&all, env);
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", stdout(&out)));
    assert_schema(&value);
    (value, out.status.code())
}

/// The schema of `--json` (schema version 1).
pub fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("../../schema/kconn-v1.json");
        let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
    })
}

/// Panics with every violation when `value` does not follow the schema.
pub fn assert_schema(value: &Value) {
    let errors: Vec<String> = schema()
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "output does not follow schema/kconn-v1.json:\n{}\n{value:#}",
        errors.join("\n")
    );
}

pub fn json(args: &[&str]) -> (Value, Option<i32>) {
    json_env(args, &[])
}

/// An address where nothing listens: bind an ephemeral port, then free it.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    addr.to_string()
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A new empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }

    /// Writes `text` to `name` in the directory; returns the path as text.
    pub fn file(&self, name: &str, text: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a temporary file");
        path.display().to_string()
    }

    /// The path of `name` in the directory, as text.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
