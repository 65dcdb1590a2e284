//! A connection driven by an arbitrary sequence of caller operations and broker behaviours, checking the contract after every step.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_connection_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_core::fuzz_support::run_connection_ops(data));
