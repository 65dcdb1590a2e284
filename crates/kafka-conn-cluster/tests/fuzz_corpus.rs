//! Replays the committed fuzz corpus (`fuzz/corpus/cluster_policy/`) and every
//! past crash input (`fuzz/regressions/cluster_policy/`) through the body the
//! cargo-fuzz target runs (`kafka_conn_cluster::fuzz_support::TARGETS`), on
//! stable Rust, so a fixed finding stays fixed. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

use kafka_conn_cluster::fuzz_support::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir/<target>/`, sorted (empty if the directory is absent).
fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8]), files: &[PathBuf]) {
    for path in files {
        let data = std::fs::read(path).expect("readable input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn the_target_has_a_seed_corpus_and_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (target, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {target}"
        );
        assert!(
            fuzz_dir()
                .join(format!("fuzz_targets/{target}.rs"))
                .is_file(),
            "no fuzz/fuzz_targets/{target}.rs"
        );
        assert!(
            !inputs("corpus", target).is_empty(),
            "no seed corpus in fuzz/corpus/{target}/"
        );
    }
}

#[test]
fn seed_corpus_replays_without_a_finding() {
    for (target, run) in TARGETS {
        replay(target, *run, &inputs("corpus", target));
    }
}

#[test]
fn past_crash_inputs_stay_fixed() {
    for (target, run) in TARGETS {
        replay(target, *run, &inputs("regressions", target));
    }
}

/// Triage: `KAFKA_CONN_FUZZ_INPUT=/abs/path/crash-... cargo test -p
/// kafka-conn-cluster --test fuzz_corpus triage -- --ignored --nocapture`
/// prints the structured input and runs the target on it.
#[test]
#[ignore = "run by hand on one input"]
fn triage() {
    let file = std::env::var("KAFKA_CONN_FUZZ_INPUT").expect("KAFKA_CONN_FUZZ_INPUT=<file>");
    let data = std::fs::read(file).expect("readable input");
    if let Some(d) = kafka_conn_cluster::fuzz_support::describe(&data) {
        println!("{d}");
    }
    (TARGETS[0].1)(&data);
}
