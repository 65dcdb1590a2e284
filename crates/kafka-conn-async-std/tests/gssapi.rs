//! Kerberos (SASL GSSAPI) on async-std: see `kafka_conn_testsuite::auth::gssapi`.
#![cfg(feature = "gssapi")]

kafka_conn_testsuite::gssapi_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);
