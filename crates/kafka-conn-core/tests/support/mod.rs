//! Shared helpers of the real-broker tests.

#![allow(dead_code, unreachable_pub)]

pub mod blocking;

/// An endpoint from the env file written by `scripts/broker-up`, or `None`
/// (with a printed reason) when it is not configured. With
/// `KAFKA_CONN_REQUIRE_BROKERS=1` (CI) a missing endpoint fails the test
/// instead of skipping it.
pub fn endpoint(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            let why = std::env::var("KAFKA_SASL_SKIP_REASON").unwrap_or_default();
            // The SASL broker may be absent for a stated reason (no ../shared).
            let excused = var.starts_with("KAFKA_SASL") && !why.is_empty();
            let required = std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1");
            if required && !excused {
                panic!("{var} is not set but KAFKA_CONN_REQUIRE_BROKERS=1: run scripts/broker-up and source its env file");
            }
            eprintln!("SKIPPED: {var} is not set (run scripts/broker-up and source .broker-state/env) {why}");
            None
        }
    }
}
