//! OIDC client credentials (KIP-768) on tokio (multi-threaded runtime):
//! see `kafka_conn_testsuite::auth::oidc`.
#![cfg(feature = "oidc")]

mod common;
use common::block_on;

kafka_conn_testsuite::oidc_suite!(block_on, kafka_conn_tokio::TokioRuntime::current());

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str, &'static str, &'static str) -> kafka_conn_tokio::OidcTokenProvider =
        kafka_conn_tokio::OidcTokenProvider::new;
    let _ = std::mem::size_of::<(kafka_conn_tokio::ClientAuth, kafka_conn_tokio::OidcError)>;
};
