//! A closed stdout (`kconn api-versions | head`) ends kconn quietly with
//! status 141, the status a shell shows for `ls | head`, for every command
//! and with `--json`: no panic, no "Broken pipe" message, no backtrace.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::*;

/// Held while a test process owns a pipe's read end: a child spawned by
/// another test thread at that moment would inherit it between fork and
/// exec, and keep the pipe open for kconn.
static SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs kconn with its stdout a pipe whose reader is already gone; returns
/// the exit status and stderr.
fn into_a_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let guard = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    // A shell that starts kconn only once its stdin closes, so the read
    // end of stdout is surely gone before kconn runs.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read _ || true; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kconn"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "1")
        .spawn()
        .expect("start kconn");
    drop(child.stdout.take());
    drop(guard);
    // Now let kconn start.
    drop(child.stdin.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().expect("wait for kconn");
    (status.code(), err)
}

/// Reads the first line, then closes the pipe (`| head -1`).
fn into_head_1(args: &[&str]) -> (Option<i32>, String, String) {
    let guard = SPAWN.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_kconn"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "1")
        .spawn()
        .expect("start kconn");
    let mut out = child.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    drop(out);
    drop(guard);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().expect("wait for kconn");
    (
        status.code(),
        String::from_utf8_lossy(&first).into_owned(),
        err,
    )
}

fn assert_quiet(args: &[&str], code: Option<i32>, err: &str) {
    assert_eq!(code, Some(141), "kconn {args:?}: stderr: {err}");
    for bad in [
        "panicked",
        "Broken pipe",
        "stack backtrace",
        "failed printing",
    ] {
        assert!(
            !err.contains(bad),
            "kconn {args:?}: {bad:?} on stderr: {err}"
        );
    }
}

#[test]
fn every_command_ends_quietly_on_a_closed_stdout() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let closed = closed_port();
    let commands: Vec<Vec<&str>> = vec![
        vec!["check", "-b", &bs],
        vec!["check", "-b", &closed],
        vec!["check", "-b", &bs, "--watch", "1s"],
        vec!["api-versions", "-b", &bs],
        vec!["ping", "-b", &bs, "-n", "3"],
        vec!["bench", "-b", &bs, "-n", "100"],
        vec!["ping", "-b", &bs, "-n", "3", "--brokers", "all"],
        vec!["bench", "-b", &bs, "-n", "100", "--brokers", "all"],
        vec!["errcode"],
        vec!["errcode", "58"],
        vec!["completions", "bash"],
        vec!["man"],
    ];
    for args in &commands {
        for json in [false, true] {
            let mut all = args.clone();
            if json {
                all.push("--json");
            }
            let (code, err) = into_a_closed_pipe(&all);
            assert_quiet(&all, code, &err);
        }
    }
}

#[test]
fn api_versions_into_head_reads_the_first_line_and_ends_quietly() {
    let Some(mock) = broker_var("KAFKA_MOCK_BOOTSTRAP") else {
        return;
    };
    // Three brokers' tables: more than one line, written in several writes.
    let (code, first, err) = into_head_1(&["api-versions", "-b", &mock]);
    assert!(first.contains("ApiVersions v"), "{first}");
    // 141 when kconn wrote after the reader left; 0 when everything fit
    // in the pipe before that. Never a panic.
    assert!(matches!(code, Some(0 | 141)), "{code:?}: {err}");
    for bad in ["panicked", "Broken pipe", "stack backtrace"] {
        assert!(!err.contains(bad), "{bad:?} on stderr: {err}");
    }
}
