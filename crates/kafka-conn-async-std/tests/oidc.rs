//! OIDC client credentials (KIP-768) on async-std: see `kafka_conn_testsuite::auth::oidc`.
#![cfg(feature = "oidc")]

kafka_conn_testsuite::oidc_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);
