//! The ApiVersions response decoder at v0-v4 on raw bytes, and round trips of arbitrary tables.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_api_versions_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| kafka_conn_core::fuzz_support::run_api_versions_response(data)
);
