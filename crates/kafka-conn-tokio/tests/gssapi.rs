//! Kerberos (SASL GSSAPI) on tokio (multi-threaded runtime): see
//! `kafka_conn_testsuite::auth::gssapi`.
#![cfg(feature = "gssapi")]

mod common;
use common::block_on;

kafka_conn_testsuite::gssapi_suite!(block_on, kafka_conn_tokio::TokioRuntime::current());

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn() -> kafka_conn_tokio::Kerberos = kafka_conn_tokio::Kerberos::new;
    let _ = std::mem::size_of::<(
        kafka_conn_tokio::KerberosError,
        kafka_conn_tokio::KerberosExchange,
    )>;
};
