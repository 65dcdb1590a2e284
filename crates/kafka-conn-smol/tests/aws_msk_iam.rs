//! Amazon MSK IAM (AWS_MSK_IAM) on smol: see `kafka_conn_testsuite::auth::aws_msk_iam`.
#![cfg(feature = "aws-msk-iam")]

kafka_conn_testsuite::aws_msk_iam_suite!(smol::block_on, kafka_conn_smol::SmolRuntime);
