//! What the tokio test files share.

/// Runs `f` on a fresh multi-threaded tokio runtime (two workers), as the
/// suites on tokio run.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
