"""The whole AWS loop over HTTP against the moto server:
bootstrap → produce → sensor tick → run → Delta on S3 → query."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.storage import aws
from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.storage.uris import join
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE
from tests.support.cli import invoke, run_lake

pytestmark = pytest.mark.e2e  # the moto server, and `lake` in subprocesses

# YYYY/MM/dd/HH/<stream>-<version>-YYYY-MM-dd-HH-mm-ss-<uuid> (moto writes no ".gz" suffix and no gzip)
FIREHOSE_KEY = r"\d{4}/\d{2}/\d{2}/\d{2}/STREAM-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}"


def _table(uri: str) -> pl.DataFrame:
    return pl.from_arrow(DeltaTable(uri, storage_options=aws.delta_storage_options(uri)).to_pyarrow_table())


def _keys(result: dg.SensorResult) -> list[list[str]]:
    return [r.run_config["ops"]["ingest_batch"]["config"]["source_keys"] for r in result.run_requests]


def test_bootstrap_produce_sensor_run_delta_query(aws_settings, aws_names, tmp_path, monkeypatch):
    s = aws_settings
    stream = aws_names["delivery_stream"]

    # bootstrap: what Terraform creates in AWS, on the emulator (idempotent).
    boot = run_lake("bootstrap", cwd=tmp_path)
    assert boot.returncode == 0, boot.stderr
    assert f"created  s3://{aws_names['raw_bucket']}" in boot.stdout
    assert f"created  firehose delivery stream {stream} -> {s.raw_uri}/" in boot.stdout
    again = run_lake("bootstrap", cwd=tmp_path)
    assert again.returncode == 0 and "created" not in again.stdout
    firehose = aws.client("firehose").describe_delivery_stream(DeliveryStreamName=stream)["DeliveryStreamDescription"]
    dest = firehose["Destinations"][0]["ExtendedS3DestinationDescription"]
    assert (dest["Prefix"], dest["CompressionFormat"]) == ("raw/", "GZIP")
    assert aws.client("kinesis").describe_stream_summary(StreamName=aws_names["stream"])[
        "StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"

    # produce: PutRecordBatch to Firehose, which delivers objects with Firehose key names.
    sent = run_lake("produce", "--events", "3000", "--duplicates", "0.02", "--malformed", "0.01", "--seed", "5",
                "--quiet", cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    m = re.search(r"sent (\d+) records \((\d+) events \+ (\d+) duplicates \+ (\d+) malformed\)", sent.stdout)
    records, events, duplicates, malformed = (int(g) for g in m.groups())
    assert events == 3000 and records == events + duplicates + malformed and duplicates and malformed
    raw = open_storage(s.raw_uri)
    delivered = list(raw.list())
    assert delivered  # packed (the default): several events per Firehose record, one object per call
    assert all(re.fullmatch(FIREHOSE_KEY.replace("STREAM", re.escape(stream)), o.key) for o in delivered), delivered[0]
    assert all(not raw.read(o.key).startswith(b"\x1f\x8b") for o in delivered)  # moto does not gzip

    # A late upload two days back: only the periodic catch-up listing sees it.
    old = datetime.now(UTC) - timedelta(days=2)
    late_key = object_key(stream, old, ".gz")
    late = [{"event_uuid": f"late-{i}", "event_name": "page:view", "created_at": old.timestamp()} for i in range(2)]
    raw.write(late_key, gzip.compress(b"".join(orjson.dumps(r) for r in late)))

    # The landing sensor lists through dagster-aws's S3 resource.
    made = []
    real_resource = aws.s3_resource
    monkeypatch.setattr(aws, "s3_resource", lambda: made.append(real_resource()) or made[-1])
    from lake_pipeline.definitions import defs as load_defs

    defs = load_defs()
    sensor = defs.resolve_sensor_def("firehose_landing_sensor")
    job = defs.resolve_job_def("ingest_job")
    resources = {"lake": LakeResource.from_settings(s)}

    def run(request: dg.RunRequest, instance) -> dg.ExecuteInProcessResult:
        result = job.execute_in_process(
            run_config={**request.run_config, "resources": {"lake": LakeResource.run_config(s)}},
            instance=instance, tags=request.tags, raise_on_error=False,
        )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())
        return result

    with dg.DagsterInstance.ephemeral() as instance:
        # A normal tick lists only the recent hour prefixes: everything produce delivered, not the late object.
        tick = sensor(dg.build_sensor_context(instance=instance, cursor=json.dumps({"tick": 1}), resources=resources))
        assert sorted(k for batch in _keys(tick) for k in batch) == sorted(o.key for o in delivered)
        assert made and all(type(r).__name__ == "S3Resource" for r in made)
        runs = [run(req, instance) for req in tick.run_requests]
        materialized = [m for r in runs for m in r.asset_materializations_for_node("ingest_batch")
                        if m.asset_key == dg.AssetKey(EVENTS_TABLE)]
        assert sum(m.metadata["inserted"].value for m in materialized) == events

        # The catch-up tick finds the late object; then there is nothing left to do.
        every = s.sensor_catchup_every_ticks
        catch_up = sensor(dg.build_sensor_context(instance=instance, cursor=json.dumps({"tick": every - 1}),
                                                  resources=resources))
        assert _keys(catch_up) == [[late_key]]
        run(catch_up.run_requests[0], instance)
        idle = sensor(dg.build_sensor_context(instance=instance, cursor=catch_up.cursor, resources=resources))
        assert idle.run_requests == [] and "no new raw objects" in idle.skip_reason.skip_message

    # Delta on S3, read back with deltalake.
    table = _table(join(s.lake_uri, EVENTS_TABLE))
    assert table.height == events + len(late)
    assert table["event_uuid"].n_unique() == table.height
    assert table["_source_key"].is_in([o.key for o in delivered] + [late_key]).all()
    assert _table(join(s.lake_uri, QUARANTINE_TABLE)).height == malformed
    ledger = _table(join(s.lake_uri, LEDGER_TABLE))
    assert sorted(ledger["source_key"]) == sorted([o.key for o in delivered] + [late_key])
    assert (ledger["records"].sum(), ledger["inserted"].sum(), ledger["duplicates"].sum()) == (
        records + len(late), events + len(late), duplicates)

    # `lake query` over S3 (LAKE_URI points at the emulator's bucket).
    q = run_lake("query", "--format", "csv",
             "SELECT count(*) AS n, count(DISTINCT event_uuid) AS u, "
             "(SELECT count(*) FROM quarantine) AS q, (SELECT sum(records) FROM ingest_ledger) AS r FROM events",
             cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    assert q.stdout.strip().splitlines()[-1] == f"{table.height},{table.height},{malformed},{records + len(late)}"


def test_produce_to_kinesis_uses_put_records_with_the_uuid_as_partition_key(bootstrapped, aws_names, tmp_path):
    # One event per record here (--no-pack): the partition key is each record's event_uuid.
    sent = run_lake("produce", "--target", "kinesis", "--events", "700", "--seed", "3", "--no-pack", "--quiet",
                    cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert "sent 700 records" in sent.stdout and "in 2 calls" in sent.stdout  # 500 records per call at most
    assert "no Kinesis-to-Firehose delivery" in sent.stderr
    kinesis = aws.client("kinesis")
    got = []
    for shard in kinesis.list_shards(StreamName=aws_names["stream"])["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=aws_names["stream"], ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            got.extend(page["Records"])
            it = page.get("NextShardIterator") if page["Records"] else None
    assert len(got) == 700
    assert all(orjson.loads(r["Data"])["event_uuid"] == r["PartitionKey"] for r in got)
    # Nothing reaches the landing zone locally: moto has no Kinesis -> Firehose hop.
    assert list(open_storage(bootstrapped.raw_uri).list()) == []


def test_produce_reports_a_missing_stream_in_one_line(aws_settings, tmp_path):
    r = invoke("produce", "--events", "10", "--quiet", cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"error: firehose stream {aws_settings.delivery_stream_name} does not exist: "
        "create it (make bootstrap) or fix the name"
    ]
