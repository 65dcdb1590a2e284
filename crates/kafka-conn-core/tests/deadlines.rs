//! The deadline property, stated once and checked on many seeded runs:
//! after `handle_timeout(now)` (with `now` at or past `poll_timeout()`), a
//! deadline it acted on (the same kind at the same instant) is never
//! reported again unless something re-armed it, and `poll_timeout()` is
//! later than `now`.
//!
//! The check itself lives in the `connection_ops` fuzz target's harness
//! (`kafka_conn_core::fuzz_support`, `DeadlineWatch`), which drives a
//! connection against the simulated broker (a real broker cannot be made to
//! stall, throttle and expire sessions on demand) with arbitrary operations,
//! SASL mechanisms and virtual time. Here it runs on inputs from a fixed
//! pseudo-random sequence, deterministic on every machine, and the test
//! also asserts that every kind of deadline was acted on along the way, so
//! that the property cannot hold by never firing.

use kafka_conn_core::fuzz_support::{connection_ops_seeded, deadline_kinds};

#[test]
fn a_deadline_handle_timeout_acted_on_is_never_reported_again() {
    let mut fired = [0u64; 9];
    for seed in 0..2000u64 {
        // Panics with the broken invariant (and the kind) if it fails.
        let counts = connection_ops_seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for (total, n) in fired.iter_mut().zip(counts) {
            *total += n;
        }
    }
    let kinds = deadline_kinds();
    assert_eq!(kinds.len(), fired.len());
    for (kind, n) in kinds.iter().zip(fired) {
        println!("{kind}: acted on {n} times");
    }
    for (kind, n) in kinds.iter().zip(fired) {
        assert!(n > 0, "no run made handle_timeout act on a {kind} deadline");
    }
}
