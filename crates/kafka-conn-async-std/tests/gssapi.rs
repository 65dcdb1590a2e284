//! Kerberos (SASL GSSAPI) on async-std: see `kafka_conn_testsuite::auth::gssapi`.
#![cfg(feature = "gssapi")]

kafka_conn_testsuite::gssapi_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn() -> kafka_conn_async_std::Kerberos = kafka_conn_async_std::Kerberos::new;
    let _ = std::mem::size_of::<(
        kafka_conn_async_std::KerberosError,
        kafka_conn_async_std::KerberosExchange,
    )>;
};
