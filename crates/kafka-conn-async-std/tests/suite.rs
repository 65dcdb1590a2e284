//! The shared integration suite on async-std.

kafka_conn_testsuite::suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);

/// async-std's Unix stream (futures-io natively).
fn unix(
    path: std::path::PathBuf,
) -> kafka_conn_async_std::BoxFuture<
    'static,
    std::io::Result<Box<dyn kafka_conn_async_std::Transport>>,
> {
    Box::pin(async move {
        let stream = async_std::os::unix::net::UnixStream::connect(path).await?;
        Ok(Box::new(stream) as Box<dyn kafka_conn_async_std::Transport>)
    })
}

kafka_conn_testsuite::transport_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime,
    unix
);
