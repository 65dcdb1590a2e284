//! Kerberos (SASL GSSAPI) on smol: see `kafka_conn_testsuite::auth::gssapi`.
#![cfg(feature = "gssapi")]

kafka_conn_testsuite::gssapi_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn() -> kafka_conn_smol::Kerberos = kafka_conn_smol::Kerberos::new;
    let _ = std::mem::size_of::<(
        kafka_conn_smol::KerberosError,
        kafka_conn_smol::KerberosExchange,
    )>;
};
