//! Amazon MSK IAM (AWS_MSK_IAM) on tokio (multi-threaded runtime): see
//! `kafka_conn_testsuite::auth::aws_msk_iam`.
#![cfg(feature = "aws-msk-iam")]

mod common;
use common::block_on;

kafka_conn_testsuite::aws_msk_iam_suite!(block_on, kafka_conn_tokio::TokioRuntime::current());

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str) -> kafka_conn_tokio::AwsMskIam = kafka_conn_tokio::AwsMskIam::new;
    let _ = std::mem::size_of::<(
        kafka_conn_tokio::AwsCredentials,
        kafka_conn_tokio::AwsMskIamError,
    )>;
};
