"""`lake serve` on AWS (the moto server): GET /analytics and /users from a lake on S3; POSTed
events go to a Kinesis stream with PutRecords, packed newline-delimited as `lake produce`
sends them, and the segment goes after."""

from __future__ import annotations

import orjson
import pytest

from lake_pipeline.serve.app import create_app
from lake_pipeline.serve.spool import KinesisSink
from lake_pipeline.storage import aws
from lake_pipeline.serve.hours import HourlyAnalytics
from lake_pipeline.serve.users import UserEvents
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.settings import load_settings
from lake_pipeline.storage.objects import open_storage
from lake_pipeline.tables.lake import Lake
from tests.support.serve import HOUR_MS, HOUR_NUMBER, T0, ad_events, asgi_client

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


def test_get_answers_from_a_lake_on_s3(aws_env, aws_names):
    import gzip

    s3 = aws.client("s3")
    for bucket in (aws_names["raw_bucket"], aws_names["lake_bucket"]):
        s3.create_bucket(Bucket=bucket)
    settings = load_settings(raw_uri=f"s3://{aws_names['raw_bucket']}/raw", lake_uri=f"s3://{aws_names['lake_bucket']}/lake")
    raw = open_storage(settings.raw_uri)
    records = ad_events(200, users=12)
    key = "2025/11/20/13/events-1-2025-11-20-13-05-00-00000000-0000-0000-0000-000000000001.gz"
    raw.write(key, gzip.compress(b"".join(orjson.dumps(r) for r in records)))
    ingest_keys(settings, [key])
    lake = Lake.from_settings(settings)
    analytics = HourlyAnalytics(lake, settings, clock=lambda: T0 + 1800)
    assert analytics.refresh() and not analytics.refresh()  # the second poll: one HEAD, nothing new
    ads = [r for r in records if r["event_name"].startswith("ad:")]
    clicks = sum(r["event_name"] == "ad:click" for r in ads)
    expected = f"unique_users,{len({r['user_id'] for r in ads})}\nclicks,{clicks}\nimpressions,{len(ads) - clicks}\n"
    assert analytics.cached(HOUR_NUMBER) == expected.encode()
    raw.write(key.replace("05-00-0", "06-00-0"), gzip.compress(b"".join(orjson.dumps(r) for r in ad_events(40, seed=5))))
    ingest_keys(settings, [key.replace("05-00-0", "06-00-0")])
    assert analytics.refresh()  # the added file read from S3
    assert analytics.cached(HOUR_NUMBER) != expected.encode()
    users = UserEvents(lake)
    users.maintain()
    page = users.page("u3", {"limit": "1000"})
    assert len(page["events"]) == sum(r["user_id"] == "u3" for r in records + ad_events(40, seed=5))
