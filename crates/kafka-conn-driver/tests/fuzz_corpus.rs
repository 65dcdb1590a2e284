//! Replays the committed corpus (`fuzz/corpus/proxy_replies/`) and any past
//! crash input (`fuzz/regressions/proxy_replies/`) of the driver's fuzz target
//! through its body, on stable Rust, so a fixed finding stays fixed. See
//! docs/fuzzing.md.

use kafka_conn_driver::fuzz_support::run_proxy_replies;
use kafka_conn_test_support::fuzz_corpus::check_targets;

#[test]
fn the_proxy_replies_target_is_wired_and_its_corpus_replays_cleanly() {
    assert!(
        check_targets(&[("proxy_replies", run_proxy_replies)]) > 0,
        "no corpus replayed"
    );
}
