//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every past
//! crash input (`fuzz/regressions/<target>/`) through the same target bodies
//! the cargo-fuzz targets run (`kafka_conn_core::fuzz_support::TARGETS`), on
//! stable Rust, so a fixed fuzz finding stays fixed. See docs/fuzzing.md.

use std::path::{Path, PathBuf};

use kafka_conn_core::fuzz_support::TARGETS;

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

/// Runs one target body on each input; a panic names the input.
fn replay(target: &str, run: fn(&[u8]), files: &[PathBuf]) {
    for path in files {
        let data = std::fs::read(path).expect("readable input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("fuzz target {target} fails on {}", path.display());
        }
    }
}

#[test]
fn every_fuzz_target_has_a_seed_corpus_and_a_cargo_fuzz_binary() {
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
    let mut total = 0;
    for (target, run) in TARGETS {
        let files = inputs("corpus", target);
        total += files.len();
        replay(target, *run, &files);
    }
    assert!(total > 0, "no corpus replayed");
}

#[test]
fn past_crash_inputs_stay_fixed() {
    for (target, run) in TARGETS {
        replay(target, *run, &inputs("regressions", target));
    }
}

#[test]
fn the_memory_check_can_fail() {
    // The bodies report a broken invariant by panicking; the shared memory
    // bound must refuse a buffer far larger than what arrived.
    use kafka_conn_core::fuzz_support::assert_memory_bounded;
    assert_memory_bounded(1 << 20, 0);
    let r = std::panic::catch_unwind(|| assert_memory_bounded(10 << 20, 1));
    assert!(
        r.is_err(),
        "10 MiB held for 1 byte received passed the check"
    );
}

/// Triage: `KAFKA_CONN_FUZZ_INPUT=<target>:<file> cargo test -p kafka-conn-core
/// --test fuzz_corpus triage -- --ignored --nocapture` prints the structured
/// input a crash file makes and runs the target on it with a backtrace.
#[test]
#[ignore = "run by hand on one input"]
fn triage() {
    let spec =
        std::env::var("KAFKA_CONN_FUZZ_INPUT").expect("KAFKA_CONN_FUZZ_INPUT=<target>:<file>");
    let (target, file) = spec.split_once(':').expect("<target>:<file>");
    let data = std::fs::read(file).expect("readable input");
    let run = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, run)| *run)
        .expect("a target of fuzz_support::TARGETS");
    if let Some(d) = kafka_conn_core::fuzz_support::describe(target, &data) {
        println!("{d}");
    }
    run(&data);
}
