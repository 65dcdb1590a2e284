//! PLAIN, OAUTHBEARER and relayed GSSAPI exchanges fed arbitrary credentials and server replies.
//! The body (and its invariants) is `kafka_conn_core::fuzz_support::run_oauth_plain_flows`.
#![no_main]

libfuzzer_sys::fuzz_target!(
    |data: &[u8]| kafka_conn_core::fuzz_support::run_oauth_plain_flows(data)
);
