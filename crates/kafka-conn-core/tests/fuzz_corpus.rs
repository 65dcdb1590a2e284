//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) and every past
//! crash input (`fuzz/regressions/<target>/`) through the same target bodies
//! the cargo-fuzz targets run (`kafka_conn_core::fuzz_support::TARGETS`), on
//! stable Rust, so a fixed fuzz finding stays fixed. See docs/fuzzing.md.

use kafka_conn_core::fuzz_support::{describe, TARGETS};
use kafka_conn_test_support::fuzz_corpus::{check_targets, find};

#[test]
fn every_target_is_wired_and_its_corpus_replays_without_a_finding() {
    assert!(check_targets(TARGETS) > 0, "no corpus replayed");
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
    if let Some(d) = describe(target, &data) {
        println!("{d}");
    }
    find(TARGETS, target)(&data);
}
