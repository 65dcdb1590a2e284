//! Amazon MSK IAM (AWS_MSK_IAM) on async-std: see `kafka_conn_testsuite::auth::aws_msk_iam`.
#![cfg(feature = "aws-msk-iam")]

kafka_conn_testsuite::aws_msk_iam_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);
