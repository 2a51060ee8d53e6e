"""The storage layer on S3 (moto over HTTP), AWS client configuration, and safe concurrent Delta commits.

The tests that talk to the moto server are e2e; the local variants of the commit tests are not."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import Transaction

from lake_pipeline.ingest import ledger
from lake_pipeline.storage import aws
from lake_pipeline.tables.lake import INGEST_APP_ID, CommitConflict, Lake
from lake_pipeline.storage.errors import StorageError, one_line
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.settings import PLANS_TABLE, load_settings


@pytest.fixture
def bucket(aws_env, aws_names) -> str:
    aws.s3_client().create_bucket(Bucket=aws_names["raw_bucket"])
    return aws_names["raw_bucket"]


@pytest.mark.e2e
def test_listing_is_paginated_relative_and_stays_under_the_prefix(bucket):
    s3 = aws.s3_client()
    for key in ("raw/2025/11/20/13/a", "raw/2025/11/20/13/b", "raw/2025/11/20/14/c", "raw/2025/11/20/14/d",
                "raw/2025/11/20/14/e", "raw/2025/11/20/14/", "raw-old/2025/11/20/13/x", "other/y"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    storage = open_storage(f"s3://{bucket}/raw/")
    calls = []
    storage.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(kw["params"]))
    storage.client.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **kw: params.update(MaxKeys=2))
    keys = [o.key for o in storage.list()]
    assert keys == ["2025/11/20/13/a", "2025/11/20/13/b", "2025/11/20/14/c", "2025/11/20/14/d", "2025/11/20/14/e"]
    assert len(calls) == 3  # 5 objects (+ a folder placeholder) in pages of 2
    assert [o.key for o in storage.list("2025/11/20/14/")] == ["2025/11/20/14/c", "2025/11/20/14/d", "2025/11/20/14/e"]
    assert [o.key for o in open_storage(f"s3://{bucket}").list("other/")] == ["other/y"]


@pytest.mark.e2e
def test_read_write_and_missing_objects(bucket):
    storage = open_storage(f"s3://{bucket}/raw")
    storage.write("2025/11/20/13/obj", b"payload")
    assert storage.read("2025/11/20/13/obj") == b"payload"
    assert [(o.key, o.size) for o in storage.list()] == [("2025/11/20/13/obj", 7)]
    with pytest.raises(StorageError, match="does not exist"):
        storage.read("2025/11/20/13/gone")
    assert storage.exists() and not open_storage("s3://no-such-bucket-abc/raw").exists()


@pytest.mark.e2e
def test_clients_honour_the_standard_aws_environment(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    s3, kinesis = aws.client("s3"), aws.client("kinesis")
    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == aws_env.endpoint
    assert kinesis.meta.endpoint_url == "http://127.0.0.1:1"
    assert s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    resource = aws.s3_resource()  # dagster-aws's, for the landing sensor
    assert (resource.region_name, resource.endpoint_url, resource.max_attempts) == ("eu-west-1", aws_env.endpoint, 3)


@pytest.mark.e2e
def test_delta_storage_options(aws_env, monkeypatch):
    assert aws.delta_storage_options("/tmp/lake") is None
    opts = aws.delta_storage_options("s3://bucket/lake")
    assert opts["AWS_ENDPOINT_URL"] == aws_env.endpoint and opts["AWS_ALLOW_HTTP"] == "true"
    assert opts["conditional_put"] == "etag" and opts["AWS_REGION"] == "us-east-1"
    assert opts["AWS_ACCESS_KEY_ID"] == "test"
    with pytest.raises(StorageError, match="dropped the DynamoDB lock"):
        aws.delta_storage_options("s3://bucket/lake", locking="dynamodb")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    opts = aws.delta_storage_options("s3://bucket/lake")
    assert "AWS_ENDPOINT_URL" not in opts and "AWS_ALLOW_HTTP" not in opts


def test_storage_errors_are_one_line():
    chain = "Generic S3 error\n  \x1b[31m↳\x1b[0m Error performing list request\n   \x1b[31m↳\x1b[0m Connection refused\n"
    assert one_line(chain) == "Generic S3 error: Error performing list request: Connection refused"
    assert str(StorageError(chain)) == one_line(chain)
    err = aws.object_store_error("s3://b/lake", OSError("... <Code>NoSuchBucket</Code> ..."))
    assert str(err) == "bucket of s3://b/lake does not exist: create it (make bootstrap) or fix the URI"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.e2e)])
def any_lake(request, tmp_path, aws_names) -> Lake:
    if request.param == "local":
        return Lake.from_settings(load_settings(lake_uri=str(tmp_path / "lake")))
    request.getfixturevalue("aws_env")  # only the S3 variant needs the moto server
    aws.s3_client().create_bucket(Bucket=aws_names["lake_bucket"])
    return Lake.from_settings(load_settings(lake_uri=f"s3://{aws_names['lake_bucket']}/lake"))


def test_a_commit_on_a_stale_snapshot_conflicts_instead_of_writing_twice(any_lake):
    lake = any_lake
    one = pa.table({"x": [1]})
    assert lake.append("t", one, batch_id=1)
    stale = lake.table("t")
    assert lake.append("t", one, batch_id=2)  # another writer, after our snapshot
    with pytest.raises(CommitConflict):  # same application id committed since the snapshot
        lake.commit("t", one, snapshot=stale, txn=Transaction(INGEST_APP_ID, 2))
    with pytest.raises(CommitConflict):  # no snapshot: the caller must look again (never a blind create)
        lake.commit("t", one, snapshot=None)
    assert not lake.append("t", one, batch_id=2)  # idempotent: batch 2 is there already
    assert lake.read_arrow("t").num_rows == 2


def test_plans_are_claimed_in_order_and_never_twice(any_lake):
    lake = any_lake
    first = ledger.claim_plan(lake, ["a", "b"])
    assert first.plan == ledger.Plan(1, ("a", "b")) and first.unfinished == ()
    # Until batch 1 reaches the ledger, nobody plans another batch: they finish batch 1 first.
    assert ledger.claim_plan(lake, ["b", "c"]) == ledger.Claim(unfinished=(first.plan,))
    # A writer that planned from a stale snapshot loses and looks again.
    stale = lake.table(PLANS_TABLE)
    import polars as pl

    rows = pl.DataFrame({"source_key": ["a", "b"], "object_bytes": [1, 1], "records": [0, 0], "inserted": [0, 0],
                         "duplicates": [0, 0], "quarantined": [0, 0]})
    ledger.write_ledger(lake, 1, rows, run_id=None)
    second = ledger.claim_plan(lake, ["b", "c"])
    assert second.plan == ledger.Plan(2, ("c",))  # "b" is in the ledger already
    with pytest.raises(CommitConflict):
        ledger._commit_plan(lake, stale, 2, ["c"])
    assert ledger.claim_plan(lake, ["a", "b"]) == ledger.Claim(unfinished=(second.plan,))
