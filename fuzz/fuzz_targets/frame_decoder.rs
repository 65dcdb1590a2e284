//! The receive buffer (size prefixes, copy and zero-copy input) against a reference model of framing.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_frame_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_core::fuzz_support::run_frame_decoder(data));
