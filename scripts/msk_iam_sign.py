#!/usr/bin/env python3
"""Signs Amazon MSK's AWS_MSK_IAM request with botocore, an implementation of
AWS Signature Version 4 independent of ours, for the aws-msk-iam tests
(crates/kafka-conn-testsuite/src/auth/aws_msk_iam.rs), which run it in a venv
they create and compare its fields with the Rust payload's.

Input on stdin, JSON: access_key, secret_key, token (or null), region, host,
timestamp (Unix seconds, the signing time). Output on stdout, JSON: the
presigned request's X-Amz-* query parameters, keys lower-cased as in the
AWS_MSK_IAM payload. The request is the one AWS's own MSK clients sign:
GET https://<host>/?Action=kafka-cluster:Connect, service kafka-cluster,
valid 900 s, only the host header signed.
"""
import datetime
import json
import sys
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import botocore.auth
import botocore.awsrequest
import botocore.credentials


def main():
    args = json.load(sys.stdin)
    fixed = datetime.datetime.fromtimestamp(args["timestamp"], datetime.timezone.utc)

    class FixedClock(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return fixed if tz else fixed.replace(tzinfo=None)

    creds = botocore.credentials.Credentials(
        args["access_key"], args["secret_key"], args.get("token")
    )
    request = botocore.awsrequest.AWSRequest(
        method="GET",
        url=f"https://{args['host']}/",
        params={"Action": "kafka-cluster:Connect"},
    )
    # botocore reads the signing time from datetime.datetime.utcnow().
    with mock.patch.object(botocore.auth.datetime, "datetime", FixedClock):
        signer = botocore.auth.SigV4QueryAuth(
            creds, "kafka-cluster", args["region"], expires=900
        )
        signer.add_auth(request)
    query = parse_qs(urlsplit(request.url).query)
    out = {k.lower(): v[0] for k, v in query.items() if k.startswith("X-Amz-")}
    out["botocore"] = botocore.__version__
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
