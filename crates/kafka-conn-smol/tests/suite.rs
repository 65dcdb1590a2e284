//! The shared integration suite on smol.

kafka_conn_testsuite::suite!(smol::block_on, kafka_conn_smol::SmolRuntime);

/// smol's Unix stream (futures-io natively).
fn unix(
    path: std::path::PathBuf,
) -> kafka_conn_smol::BoxFuture<'static, std::io::Result<Box<dyn kafka_conn_smol::Transport>>> {
    Box::pin(async move {
        let stream = smol::net::unix::UnixStream::connect(path).await?;
        Ok(Box::new(stream) as Box<dyn kafka_conn_smol::Transport>)
    })
}

kafka_conn_testsuite::transport_suite!(smol::block_on, kafka_conn_smol::SmolRuntime, unix);
