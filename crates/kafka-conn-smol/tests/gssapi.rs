//! Kerberos (SASL GSSAPI) on smol: see `kafka_conn_testsuite::auth::gssapi`.
#![cfg(feature = "gssapi")]

kafka_conn_testsuite::gssapi_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);
