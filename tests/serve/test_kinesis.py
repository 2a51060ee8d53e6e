"""POST /analytics on AWS: the spool's segments go to a Kinesis stream (the moto server) with
PutRecords, packed newline-delimited as `lake produce` sends them; the segment goes after."""

from __future__ import annotations

import orjson
import pytest

from lake_pipeline.serve.app import create_app
from lake_pipeline.serve.spool import KinesisSink
from lake_pipeline.storage import aws
from tests.support.serve import HOUR_MS, T0, asgi_client

pytestmark = pytest.mark.e2e


def _stream_events(stream: str) -> list[dict]:
    kinesis = aws.client("kinesis")
    out = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            out += [orjson.loads(line) for r in page["Records"] for line in r["Data"].splitlines() if line]
            it = page.get("NextShardIterator") if page["Records"] else None
    return out


@pytest.mark.anyio
async def test_posts_reach_the_kinesis_stream_once(aws_env, aws_names, settings, tmp_path):
    kinesis = aws.client("kinesis")
    kinesis.create_stream(StreamName=aws_names["stream"], ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=aws_names["stream"])
    app = create_app(settings.with_overrides(serve_spool_dir=str(tmp_path / "spool"), serve_stream=aws_names["stream"],
                                             serve_flush_seconds=3600.0), clock=lambda: T0 + 60)
    spool = app.state.service.spool
    assert isinstance(spool.sink, KinesisSink)
    async with asgi_client(app) as client:
        for i in range(120):
            r = await client.post("/analytics", params={"timestamp": HOUR_MS + i, "user": f"k{i}", "event": "click"})
            assert r.status_code == 204
        assert spool.flush(force=True) == 1
    events = _stream_events(aws_names["stream"])
    assert sorted(e["user_id"] for e in events) == sorted(f"k{i}" for i in range(120))
    assert {e["event_name"] for e in events} == {"ad:click"} and not spool.sealed()
