//! Replays the committed fuzz corpus (`fuzz/corpus/cluster_policy/`) and every
//! past crash input (`fuzz/regressions/cluster_policy/`) through the body the
//! cargo-fuzz target runs (`kafka_conn_cluster::fuzz_support::TARGETS`), on
//! stable Rust, so a fixed finding stays fixed. See docs/fuzzing.md.

use kafka_conn_cluster::fuzz_support::{describe, TARGETS};
use kafka_conn_test_support::fuzz_corpus::check_targets;

#[test]
fn the_target_is_wired_and_its_corpus_replays_without_a_finding() {
    assert!(check_targets(TARGETS) > 0, "no corpus replayed");
}

/// Triage: `KAFKA_CONN_FUZZ_INPUT=/abs/path/crash-... cargo test -p
/// kafka-conn-cluster --test fuzz_corpus triage -- --ignored --nocapture`
/// prints the structured input and runs the target on it.
#[test]
#[ignore = "run by hand on one input"]
fn triage() {
    let file = std::env::var("KAFKA_CONN_FUZZ_INPUT").expect("KAFKA_CONN_FUZZ_INPUT=<file>");
    let data = std::fs::read(file).expect("readable input");
    if let Some(d) = describe(&data) {
        println!("{d}");
    }
    (TARGETS[0].1)(&data);
}
