//! The shared integration suite on tokio (multi-threaded runtime).

mod common;
use common::block_on;

kafka_conn_testsuite::suite!(block_on, kafka_conn_tokio::TokioRuntime::current());

/// tokio's Unix stream through tokio-util's futures-io compat layer.
fn unix(
    path: std::path::PathBuf,
) -> kafka_conn_tokio::BoxFuture<'static, std::io::Result<Box<dyn kafka_conn_tokio::Transport>>> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    Box::pin(async move {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Ok(Box::new(stream.compat()) as Box<dyn kafka_conn_tokio::Transport>)
    })
}

kafka_conn_testsuite::transport_suite!(block_on, kafka_conn_tokio::TokioRuntime::current(), unix);
