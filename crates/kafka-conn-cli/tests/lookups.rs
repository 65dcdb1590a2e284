//! `kconn errcode`, `kconn completions` and `kconn man`: no broker needed.

mod common;

use common::*;

#[test]
fn errcode_by_number_name_and_part_of_a_name() {
    let out = kconn(&["errcode", "58"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with("58 SASL_AUTHENTICATION_FAILED\n"),
        "{text}"
    );
    assert!(text.contains("not retriable"), "{text}");

    let out = kconn(&["errcode", "not_leader_or_follower"]);
    let text = stdout(&out);
    assert!(text.starts_with("6 NOT_LEADER_OR_FOLLOWER\n"), "{text}");
    assert!(
        text.contains("retriable: the same request may succeed later"),
        "{text}"
    );

    // Part of a name: a table.
    let out = kconn(&["errcode", "sasl"]);
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().contains("RETRIABLE"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");

    let (report, code) = json(&["errcode", "-1"]);
    assert_eq!(code, Some(0));
    assert_eq!(report["codes"][0]["name"], "UNKNOWN_SERVER_ERROR");
    assert_eq!(report["codes"][0]["retriable"], false);

    let (report, code) = json(&["errcode"]);
    assert_eq!(code, Some(0));
    assert!(report["codes"].as_array().unwrap().len() > 130, "{report}");
}

#[test]
fn an_unknown_error_code_fails_with_a_pointer_to_the_list() {
    let out = kconn(&["errcode", "9999"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Kafka error code matches \"9999\""),
        "{err}"
    );
    let (report, code) = json(&["errcode", "NO_SUCH_ERROR"]);
    assert_eq!(code, Some(1));
    assert_eq!(report["ok"], false);
    assert_eq!(report["error"]["kind"], "unknown_error_code");
}

#[test]
fn completions_come_from_the_command_line_definition() {
    for (shell, needle) in [
        ("bash", "_kconn()"),
        ("zsh", "#compdef kconn"),
        ("fish", "complete -c kconn"),
        ("elvish", "kconn"),
        ("powershell", "kconn"),
    ] {
        let out = kconn(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let text = stdout(&out);
        assert!(text.contains(needle), "{shell}: {text}");
        // Every command and the new options are there.
        for word in ["check", "api-versions", "errcode", "roundtrip", "config"] {
            assert!(text.contains(word), "{shell} lacks {word}");
        }
    }
    // A bash that can source it: its syntax is valid.
    let out = kconn(&["completions", "bash"]);
    let dir = TempDir::new("kconn-completions");
    let file = dir.file("kconn.bash", &out.stdout);
    let status = std::process::Command::new("bash")
        .args(["-n", &file])
        .status()
        .expect("run bash");
    assert!(status.success());
}

#[test]
fn the_man_page_comes_from_the_command_line_definition() {
    let out = kconn(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(text.contains(".TH kconn 1"), "no .TH");
    for word in [
        "check",
        "api\\-versions",
        "errcode",
        "\\-\\-json",
        "Exit codes",
    ] {
        assert!(text.contains(word), "man page lacks {word}");
    }
    let (report, code) = json(&["man"]);
    assert_eq!(code, Some(0));
    assert!(report["output"].as_str().unwrap().contains(".TH kconn 1"));
}
