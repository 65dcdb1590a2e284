//! The shared integration suite on tokio (multi-threaded runtime).

mod common;
use common::block_on;

kafka_conn_testsuite::suite!(block_on, kafka_conn_tokio::TokioRuntime::current());
