//! OIDC client credentials (KIP-768) on smol: see `kafka_conn_testsuite::auth::oidc`.
#![cfg(feature = "oidc")]

kafka_conn_testsuite::oidc_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);
