//! OIDC client credentials (KIP-768) on async-std: see `kafka_conn_testsuite::auth::oidc`.
#![cfg(feature = "oidc")]

kafka_conn_testsuite::oidc_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str, &'static str, &'static str) -> kafka_conn_async_std::OidcTokenProvider =
        kafka_conn_async_std::OidcTokenProvider::new;
    let _ = std::mem::size_of::<(
        kafka_conn_async_std::ClientAuth,
        kafka_conn_async_std::OidcError,
    )>;
};
