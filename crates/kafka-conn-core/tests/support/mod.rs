//! Shared helpers of the real-broker tests.

#![allow(dead_code, unreachable_pub)]

pub mod blocking;

/// An endpoint from the env file written by `scripts/broker-up`, or `None`
/// (with a printed reason) when it is not configured. With
/// `KAFKA_CONN_REQUIRE_BROKERS=1` (CI) a missing endpoint fails the test
/// instead of skipping it, unless the env file says why that broker is
/// absent (`KAFKA_SASL_SKIP_REASON`, `KAFKA_NOIDA_SKIP_REASON`).
pub fn endpoint(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            // The SASL broker (no ../shared) and noida-db (KAFKA_CONN_NOIDA=0)
            // may be absent for a stated reason.
            let reason = ["KAFKA_SASL", "KAFKA_NOIDA"]
                .into_iter()
                .find(|service| var.starts_with(service))
                .map(|service| format!("{service}_SKIP_REASON"));
            let why = reason
                .and_then(|r| std::env::var(r).ok())
                .unwrap_or_default();
            let excused = !why.is_empty();
            let required = std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1");
            if required && !excused {
                panic!("{var} is not set but KAFKA_CONN_REQUIRE_BROKERS=1: run scripts/broker-up and source its env file");
            }
            eprintln!("SKIPPED: {var} is not set (run scripts/broker-up and source .broker-state/env) {why}");
            None
        }
    }
}
