//! The cluster policy driven by arbitrary configurations, operations, timestamps and Metadata bodies, checking its invariants after every step.
//! The body (and its invariants) is `kafka_conn_cluster::fuzz_support::run_cluster_policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_cluster::fuzz_support::run_cluster_policy(data));
