"""Uploads files to moto's S3 for the tests: creates BUCKET, puts each FILE under KEY.
Usage: VENV/bin/python put.py ENDPOINT BUCKET KEY=FILE..."""
import sys

import boto3

endpoint, bucket, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="falconry",
    aws_secret_access_key="falconry",
    region_name="us-east-1",
)
s3.create_bucket(Bucket=bucket)
for pair in pairs:
    key, path = pair.split("=", 1)
    s3.upload_file(path, bucket, key)
