//! The SOCKS5 and HTTP CONNECT reply parsers of the driver on arbitrary proxy bytes.
//! The body (and its invariants) is `kafka_conn_driver::fuzz_support::run_proxy_replies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kafka_conn_driver::fuzz_support::run_proxy_replies(data));
