//! OIDC client credentials (KIP-768) on smol: see `kafka_conn_testsuite::auth::oidc`.
#![cfg(feature = "oidc")]

kafka_conn_testsuite::oidc_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str, &'static str, &'static str) -> kafka_conn_smol::OidcTokenProvider =
        kafka_conn_smol::OidcTokenProvider::new;
    let _ = std::mem::size_of::<(kafka_conn_smol::ClientAuth, kafka_conn_smol::OidcError)>;
};
