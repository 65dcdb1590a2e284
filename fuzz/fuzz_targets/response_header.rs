//! Response header decoding at every header version, against the fixed layout and the encoder.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_response_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_core::fuzz_support::run_response_header(data));
