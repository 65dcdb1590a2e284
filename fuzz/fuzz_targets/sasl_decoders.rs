//! SaslHandshake and SaslAuthenticate (v0-v2) response decoders; what decodes re-encodes the same.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_sasl_decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_core::fuzz_support::run_sasl_decoders(data));
