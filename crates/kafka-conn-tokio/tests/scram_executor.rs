//! SCRAM's PBKDF2 runs on tokio's blocking pool, not on the executor: on a
//! current-thread runtime (one thread for every task), another connection
//! keeps answering while one authenticates with a high iteration count.
//! See `kafka_conn_testsuite::scram`.

#[test]
fn scram_pbkdf2_leaves_a_current_thread_runtime_free() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            kafka_conn_testsuite::scram::scram_pbkdf2_leaves_a_single_threaded_executor_free(
                kafka_conn_tokio::TokioRuntime::current(),
            )
            .await
        });
}
