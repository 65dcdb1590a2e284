//! The SCRAM-SHA-256/512 client fed arbitrary server-first and server-final messages, checked against an independent server computation.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_scram_client`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_core::fuzz_support::run_scram_client(data));
