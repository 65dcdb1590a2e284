//! A ready connection with requests in flight fed arbitrary bytes in arbitrary chunks, against a reference model.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_connection_bytes`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| kafka_conn_core::fuzz_support::run_connection_bytes(data)
);
