//! Every command's `--json` output, from the built binary, against
//! `schema/kconn-v1.json` (the other tests check it on every JSON output
//! too; this one runs each command, successes and failures, in one place),
//! and the schema itself is strict enough to catch a broken envelope.

mod common;

use common::*;

#[test]
fn every_command_succeeding_and_failing_follows_the_schema() {
    let Some([bs, mock]) = broker_vars(["KAFKA_PLAINTEXT_BOOTSTRAP", "KAFKA_MOCK_BOOTSTRAP"])
    else {
        return;
    };
    let closed = closed_port();
    let dir = TempDir::new("kconn-schema");
    let props = dir.file("c.properties", format!("bootstrap.servers={bs}\nacks=1\n"));
    let bad = dir.file("bad.properties", "security.protocol=TLS\n");
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["check", "-b", &bs], 0),
        (vec!["check", "-b", &mock], 0),
        (vec!["check", "-b", &closed], 1),
        (vec!["check", "-b", "kconn-test.invalid:9092"], 1),
        (
            vec!["check", "-F", &props, "--roundtrip", "kconn-schema-absent"],
            1,
        ),
        (vec!["check", "-F", &props, "--no-metadata"], 0),
        (vec!["api-versions", "-b", &mock], 0),
        (vec!["api-versions", "-b", &closed], 1),
        (vec!["ping", "-b", &bs, "-n", "2"], 0),
        (vec!["ping", "-b", &closed], 1),
        (vec!["bench", "-b", &bs, "-n", "20"], 0),
        (vec!["bench", "-b", &closed], 1),
        (vec!["ping", "-b", &mock, "--brokers", "all", "-n", "2"], 0),
        (vec!["ping", "-b", &mock, "--brokers", "99"], 1),
        (
            vec!["bench", "-b", &mock, "--brokers", "all", "-n", "30"],
            0,
        ),
        (vec!["bench", "-b", &closed, "--brokers", "all"], 1),
        (vec!["errcode", "35"], 0),
        (vec!["errcode", "nothing-like-this"], 1),
        (vec!["completions", "zsh"], 0),
        (vec!["man"], 0),
        // kconn's own usage and configuration errors (exit 2).
        (vec!["check"], 2),
        (vec!["api-versions", "-F", &bad], 2),
        (
            vec![
                "ping",
                "-b",
                "h:1",
                "--security-protocol",
                "PLAINTEXT",
                "--tls-ca",
                "x",
            ],
            2,
        ),
    ];
    for (args, expected) in cases {
        // json() checks the output against the schema.
        let (report, code) = json(&args);
        assert_eq!(code, Some(expected), "{args:?}: {report:#}");
        assert_eq!(report["schema"], 1);
        assert_eq!(report["ok"], expected == 0, "{args:?}");
        assert_eq!(report["command"], args[0]);
        if expected == 2 {
            assert_eq!(report["error"]["step"], "config", "{report:#}");
        }
    }
}

#[test]
fn the_schema_rejects_what_is_not_an_envelope() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let (good, _) = json(&["check", "-b", &bs]);
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        assert!(!schema().is_valid(&v), "accepted: {v}");
    };
    broken(&|v| {
        v.as_object_mut().unwrap().remove("schema");
    });
    broken(&|v| v["schema"] = 2.into());
    broken(&|v| v["command"] = "status".into());
    broken(&|v| v["undocumented"] = true.into());
    broken(&|v| v["brokers"][0]["steps"][0]["status"] = "fine".into());
    broken(&|v| v["brokers"][0]["error"] = serde_json::json!({"kind": "x"}));
    broken(&|v| {
        v["brokers"][0].as_object_mut().unwrap().remove("warnings");
    });
}
