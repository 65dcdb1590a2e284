//! Amazon MSK IAM (AWS_MSK_IAM) on async-std: see `kafka_conn_testsuite::auth::aws_msk_iam`.
#![cfg(feature = "aws-msk-iam")]

kafka_conn_testsuite::aws_msk_iam_suite!(
    async_std::task::block_on,
    kafka_conn_async_std::AsyncStdRuntime
);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str) -> kafka_conn_async_std::AwsMskIam =
        kafka_conn_async_std::AwsMskIam::new;
    let _ = std::mem::size_of::<(
        kafka_conn_async_std::AwsCredentials,
        kafka_conn_async_std::AwsMskIamError,
    )>;
};
