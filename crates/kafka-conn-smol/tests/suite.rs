//! The shared integration suite on smol.

kafka_conn_testsuite::suite!(smol::block_on, kafka_conn_smol::SmolRuntime);
