"""Packing several events per Firehose/Kinesis record (`lake produce`, the producer contract).

Firehose bills every record rounded up to 5 KiB; packed records are billed close to
their bytes. Over the session's moto server: what lands from packed delivery parses
to exactly the events (and quarantine rows) that unpacked delivery lands.
"""

from __future__ import annotations

import re

import orjson
import pytest

from lake_pipeline.devtools.producer import (
    BILLING_UNIT,
    DEFAULT_PACK_BYTES,
    KinesisSink,
    SyntheticEvents,
    billed_bytes,
    open_sink,
    pack,
    produce,
)
from lake_pipeline.parse.reader import ChunkParser, parse_keys
from lake_pipeline.storage import aws
from lake_pipeline.storage.objects import open_storage
from tests.support.cli import invoke, run_lake

CLOCK = 1_764_000_000.5  # fixed created_at, so two deliveries of one seed are the same events


def _events(n: int, seed: int = 7, duplicates: float = 0.05, malformed: float = 0.02) -> SyntheticEvents:
    return SyntheticEvents(n, seed=seed, duplicates=duplicates, malformed=malformed, clock=lambda: CLOCK)


def test_packed_records_hold_whole_events_newline_delimited_within_the_target():
    events = list(_events(3000))
    packed = list(pack(events, DEFAULT_PACK_BYTES))
    assert sum(r.events for r in packed) == len(events)
    assert all(r.size <= DEFAULT_PACK_BYTES and r.data.endswith(b"\n") for r in packed)
    lines = [line for r in packed for line in r.data.split(b"\n")[:-1]]
    assert lines == [e.data for e in events]  # same bytes, same order
    assert [r.partition_key for r in packed] == [events[sum(p.events for p in packed[:i])].partition_key
                                                  for i in range(len(packed))]
    # Full records: each is within one event of the target.
    biggest = max(e.size for e in events) + 1
    assert all(r.size > DEFAULT_PACK_BYTES - biggest for r in packed[:-1])


def test_packing_brings_firehose_billing_near_the_raw_bytes():
    events = list(_events(5000, duplicates=0, malformed=0))
    raw = sum(e.size for e in events)
    unpacked = sum(billed_bytes(e.size) for e in events) / raw
    packed_records = list(pack(events, DEFAULT_PACK_BYTES))
    packed = sum(billed_bytes(r.size) for r in packed_records) / raw
    assert unpacked > 4  # the generator's events are a few hundred bytes: 5 KiB each is billed
    assert packed <= 1.05
    assert len(packed_records) * 20 < len(events)
    # One 5 KiB unit per record is the worst case of the smallest target.
    assert sum(billed_bytes(r.size) for r in pack(events, BILLING_UNIT)) / raw <= 1.3


def test_an_event_larger_than_the_target_travels_alone():
    small = list(_events(3, duplicates=0, malformed=0))
    big = type(small[0])(b'{"event_uuid":"big","pad":"' + b"x" * 6000 + b'"}', "big")
    packed = list(pack([small[0], big, small[1], small[2]], BILLING_UNIT))
    assert [r.events for r in packed] == [1, 1, 2]
    assert packed[1].data == big.data + b"\n"


def _rows(parsed):
    # Sorted: moto names objects of the same second by a random uuid, so key order is not send order.
    records = sorted(parsed.records.select("event_uuid", "event_name", "created_at", "payload").rows(), key=str)
    # The reason's kind; for a truncated record the JSON decoder's detail differs with what
    # follows it (the next record's "{" when unpacked, a newline when packed).
    quarantine = sorted(((raw, reason.split(":")[0]) for raw, reason in parsed.quarantine.select(
        "raw_record", "reason").rows()), key=str)
    return records, quarantine


@pytest.mark.e2e
def test_packed_firehose_delivery_lands_the_same_events_as_unpacked(bootstrapped):
    raw = open_storage(bootstrapped.raw_uri)
    sink = open_sink("firehose", bootstrapped.delivery_stream_name)

    plain = produce(sink, _events(2000), sleep=lambda s: None)
    plain_keys = sorted(o.key for o in raw.list())
    packed = produce(sink, _events(2000), pack_bytes=DEFAULT_PACK_BYTES, sleep=lambda s: None)
    packed_keys = sorted(o.key for o in raw.list() if o.key not in set(plain_keys))

    assert plain.events == packed.events == plain.records > 2000
    assert packed.records * 20 < plain.records  # far fewer Firehose records
    assert packed.calls < plain.calls
    assert packed.billed_bytes <= 1.05 * packed.bytes and plain.billed_bytes > 4 * plain.bytes

    for parse in (lambda keys: parse_keys(bootstrapped.raw_uri, keys),
                  lambda keys: ChunkParser(bootstrapped.raw_uri, parser="duckdb", workers=1).parse_bulk(
                      [o for o in raw.list() if o.key in set(keys)])):
        want, got = parse(plain_keys), parse(packed_keys)
        assert want.records_read == got.records_read == plain.events
        assert _rows(got) == _rows(want)  # the same events (payloads included), the same quarantine rows
        assert got.quarantine.height > 0 and got.records.height > 1900


@pytest.mark.e2e
def test_packed_kinesis_records_split_into_the_events(bootstrapped):
    sink = open_sink("kinesis", bootstrapped.stream_name)
    assert isinstance(sink, KinesisSink)
    events = list(_events(700, duplicates=0, malformed=0))
    result = produce(sink, events, pack_bytes=DEFAULT_PACK_BYTES, sleep=lambda s: None)
    assert result.events == 700 and result.records < 70 and result.calls == 1
    kinesis = aws.client("kinesis")
    got = []
    for shard in kinesis.list_shards(StreamName=bootstrapped.stream_name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=bootstrapped.stream_name, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            page = kinesis.get_records(ShardIterator=it, Limit=1000)
            got.extend(page["Records"])
            it = page.get("NextShardIterator") if page["Records"] else None
    assert len(got) == result.records
    lines = [orjson.loads(line) for r in got for line in r["Data"].splitlines()]
    assert sorted(e["event_uuid"] for e in lines) == sorted(orjson.loads(e.data)["event_uuid"] for e in events)
    # The partition key is the first packed event's uuid.
    assert all(orjson.loads(r["Data"].splitlines()[0])["event_uuid"] == r["PartitionKey"] for r in got)


@pytest.mark.e2e
@pytest.mark.parametrize("args,packed", [((), True), (("--no-pack",), False)])
def test_lake_produce_packs_by_default(bootstrapped, tmp_path, args, packed):
    sent = run_lake("produce", "--events", "1500", "--seed", "4", "--quiet", *args, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr
    assert "sent 1500 records (1500 events" in sent.stdout
    m = re.search(r"packed into (\d+) stream records \(avg ([\d,]+) bytes; Firehose bills ([\d.]+)x", sent.stdout)
    assert bool(m) is packed, sent.stdout
    if packed:
        records, avg, billed = int(m.group(1)), int(m.group(2).replace(",", "")), float(m.group(3))
        assert records * 20 < 1500 and avg > 20 * 1024 and billed <= 1.05
        assert "in 1 calls" in sent.stdout
    else:
        assert "in 3 calls" in sent.stdout  # 500 records per call


def test_pack_kib_must_be_a_multiple_of_the_billing_unit(tmp_path):
    bad = invoke("produce", "--events", "10", "--pack-kib", "7", "--quiet", cwd=tmp_path)
    assert bad.exit_code != 0 and "multiple of 5" in bad.stderr
