//! The shared integration suite on async-std.

kafka_conn_testsuite::suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);
