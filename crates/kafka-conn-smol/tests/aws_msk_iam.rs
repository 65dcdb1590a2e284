//! Amazon MSK IAM (AWS_MSK_IAM) on smol: see `kafka_conn_testsuite::auth::aws_msk_iam`.
#![cfg(feature = "aws-msk-iam")]

kafka_conn_testsuite::aws_msk_iam_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);

// The adapter re-exports the feature's API (adapter_api!'s glob): a compile check.
const _: fn() = || {
    let _: fn(&'static str) -> kafka_conn_smol::AwsMskIam = kafka_conn_smol::AwsMskIam::new;
    let _ = std::mem::size_of::<(
        kafka_conn_smol::AwsCredentials,
        kafka_conn_smol::AwsMskIamError,
    )>;
};
