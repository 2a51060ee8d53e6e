"""`lake produce`: send synthetic events to Kinesis Data Firehose or a Kinesis Data Stream.

Records come from the same generator as ``lake generate`` (:mod:`lake_pipeline.devtools.synthetic`:
the catalogue of 100 event names and their payloads), stamped with the current time.

The API limits are respected: at most 500 records and 4 MiB per call, and at most 1 MiB
per record (Firehose: 1,000 KiB). A call can succeed while some of its records fail
(``FailedPutCount``, a per-record ``ErrorCode`` such as ``ServiceUnavailableException``
or ``ProvisionedThroughputExceededException``); those records are sent again with
exponential backoff and full jitter. Whole-call failures (throttling, 5xx, connection
errors) are retried by botocore's retry mode (:mod:`lake_pipeline.storage.aws`).

Packing (the producer contract, docs/aws-local.md): Firehose bills every record rounded
up to 5 KiB, so one ~1 KB event per record pays for about five times its bytes.
:func:`pack` puts several events into one stream record, newline-delimited and ending
in a newline, up to a target size that is a multiple of 5 KiB (25 KiB by default). The
raw parser reads NDJSON inside an object, and Firehose's concatenation of records stays
NDJSON because each record ends in a newline, so the landed objects parse to the same
events. An event larger than the target travels alone.
"""

from __future__ import annotations

import random
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from lake_pipeline.devtools.synthetic import event_names, event_payload, malformed_record

KIB = 1024
MIB = 1024 * KIB
TARGETS = ("firehose", "kinesis")
# Firehose rounds every record up to a multiple of this for billing.
BILLING_UNIT = 5 * KIB
# Default packed-record size: five billing units (also a Kinesis 25 KB PUT payload unit).
DEFAULT_PACK_BYTES = 5 * BILLING_UNIT


@dataclass(frozen=True)
class Limits:
    records_per_call: int
    bytes_per_call: int
    bytes_per_record: int


# PutRecordBatch: 500 records, 4 MiB per call, 1,000 KiB per record.
FIREHOSE_LIMITS = Limits(500, 4 * MIB, 1000 * KIB)
# PutRecords: 500 records and 1 MiB per record (data + partition key); we keep calls under 4 MiB too.
KINESIS_LIMITS = Limits(500, 4 * MIB, 1 * MIB)


class ProduceError(RuntimeError):
    """Records could not be delivered. The message says why and what to do."""


@dataclass(frozen=True)
class Record:
    data: bytes
    partition_key: str  # Kinesis shard routing; the (first) event's uuid
    events: int = 1  # events packed into this record

    @property
    def size(self) -> int:
        return len(self.data)


class Sink(Protocol):
    limits: Limits
    name: str

    def put(self, records: list[Record]) -> list[str | None]:
        """Send one call; return the error code of each record (None: delivered)."""


class FirehoseSink:
    """PutRecordBatch to a Firehose delivery stream (DirectPut)."""

    limits = FIREHOSE_LIMITS

    def __init__(self, client: Any, stream: str):
        self.client = client
        self.name = stream

    def put(self, records: list[Record]) -> list[str | None]:
        resp = self.client.put_record_batch(DeliveryStreamName=self.name, Records=[{"Data": r.data} for r in records])
        if not resp.get("FailedPutCount"):
            return [None] * len(records)
        return [r.get("ErrorCode") for r in resp["RequestResponses"]]


class KinesisSink:
    """PutRecords to a Kinesis Data Stream."""

    limits = KINESIS_LIMITS

    def __init__(self, client: Any, stream: str):
        self.client = client
        self.name = stream

    def put(self, records: list[Record]) -> list[str | None]:
        resp = self.client.put_records(
            StreamName=self.name, Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records]
        )
        if not resp.get("FailedRecordCount"):
            return [None] * len(records)
        return [r.get("ErrorCode") for r in resp["Records"]]


def record_size(record: Record, sink: Sink) -> int:
    """Bytes a record counts against the limits (Kinesis counts the partition key too)."""
    extra = len(record.partition_key.encode()) if isinstance(sink, KinesisSink) else 0
    return record.size + extra


@dataclass
class SyntheticEvents:
    """Synthetic records stamped with the current time; counts what it produced."""

    events: int
    seed: int | None = None
    duplicates: float = 0.0
    malformed: float = 0.0
    clock: Callable[[], float] = time.time
    produced: Counter = field(default_factory=Counter)

    def __iter__(self) -> Iterator[Record]:
        rng = random.Random(self.seed)  # None: a fresh seed, so two runs never share event_uuids
        names = event_names()
        for _ in range(self.events):
            now = self.clock()
            name = rng.choice(names)
            uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
            rec = {
                "event_uuid": uid,
                "event_name": name,
                "created_at": round(now, 6) if rng.random() < 0.8 else int(now),
                **event_payload(rng, name),
            }
            data = orjson.dumps(rec)
            self.produced["events"] += 1
            yield Record(data, uid)
            if rng.random() < self.duplicates:  # a producer retry: the very same record again
                self.produced["duplicates"] += 1
                yield Record(data, uid)
            if rng.random() < self.malformed:
                self.produced["malformed"] += 1
                yield Record(malformed_record(rng, data), uid)


def billed_bytes(size: int, unit: int = BILLING_UNIT) -> int:
    """Bytes Firehose bills for one record of ``size`` bytes (rounded up to 5 KiB)."""
    return max(1, -(-size // unit)) * unit


def pack(records: Iterable[Record], target_bytes: int = DEFAULT_PACK_BYTES) -> Iterator[Record]:
    """Pack events into newline-delimited records of at most ``target_bytes`` each.

    Each packed record is whole events joined by a newline and ends in one, so
    records concatenated by Firehose stay newline-delimited. Its partition key is its
    first event's. Events keep their order; one larger than the target goes alone.
    """
    if target_bytes < 1:
        raise ValueError("target_bytes must be positive")
    parts: list[bytes] = []
    size = 0
    key = ""
    for record in records:
        n = record.size + 1  # the event and its newline
        if parts and size + n > target_bytes:
            yield Record(b"".join(parts), key, len(parts))
            parts, size = [], 0
        if not parts:
            key = record.partition_key
        parts.append(record.data + b"\n")
        size += n
    if parts:
        yield Record(b"".join(parts), key, len(parts))


@dataclass
class ProduceResult:
    records: int = 0  # stream records delivered (packed: several events each)
    events: int = 0  # events delivered (= records when not packed)
    bytes: int = 0
    billed_bytes: int = 0  # what Firehose bills: each record rounded up to 5 KiB
    calls: int = 0
    retried: int = 0  # record sends that failed and were sent again
    oversized: int = 0  # records over the per-record limit, not sent
    errors: Counter = field(default_factory=Counter)  # per-record error codes seen
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def batches(
    records: Iterable[Record],
    sink: Sink,
    max_records: int,
    result: ProduceResult,
    max_events: int | None = None,
) -> Iterator[list[Record]]:
    """Group records into calls within the sink's limits (and at most ``max_events`` events
    per call, one record at least); count (and skip) oversized records."""
    limits = sink.limits
    cap = max(1, min(max_records, limits.records_per_call))
    batch: list[Record] = []
    size = 0
    events = 0
    for record in records:
        n = record_size(record, sink)
        if n > limits.bytes_per_record:
            result.oversized += 1
            continue
        full = len(batch) >= cap or size + n > limits.bytes_per_call
        if batch and (full or (max_events is not None and events + record.events > max_events)):
            yield batch
            batch, size, events = [], 0, 0
        batch.append(record)
        size += n
        events += record.events
    if batch:
        yield batch


def backoff(attempt: int, rng: random.Random, base: float = 0.1, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter (seconds before resend number ``attempt + 1``)."""
    return rng.uniform(0, min(cap, base * 2**attempt))


def send(
    sink: Sink,
    batch: list[Record],
    result: ProduceResult,
    *,
    max_attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> None:
    """Send one batch; resend the records that failed, with backoff, until all are delivered."""
    rng = rng or random.Random()
    pending = batch
    for attempt in range(max_attempts):
        codes = sink.put(pending)
        result.calls += 1
        failed = [r for r, code in zip(pending, codes, strict=True) if code]
        delivered = [r for r, code in zip(pending, codes, strict=True) if not code]
        result.records += len(delivered)
        result.events += sum(r.events for r in delivered)
        result.bytes += sum(r.size for r in delivered)
        result.billed_bytes += sum(billed_bytes(r.size) for r in delivered)
        if not failed:
            return
        result.errors.update(code for code in codes if code)
        if attempt + 1 < max_attempts:
            result.retried += len(failed)
            sleep(backoff(attempt, rng))
        pending = failed
    raise ProduceError(
        f"{len(pending)} record(s) still failing after {max_attempts} attempts to {sink.name} "
        f"({', '.join(f'{c} x{n}' for c, n in result.errors.most_common(3))}); "
        "lower --rate or raise the stream's capacity"
    )


def produce(
    sink: Sink,
    records: Iterable[Record],
    *,
    rate: float | None = None,
    pack_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
    max_attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ProduceResult:
    """Send ``records`` (one event each) through ``sink``, at most ``rate`` events per second
    (None: as fast as possible), packed into records of up to ``pack_bytes`` (None: one
    event per record).

    With a rate, a call carries at most about one second's worth of events, so the
    stream receives a steady flow rather than bursts. ``progress`` gets events delivered.
    """
    result = ProduceResult()
    started = clock()
    if pack_bytes:
        records = pack(records, pack_bytes)
    max_events = max(1, int(rate)) if rate else None
    for batch in batches(records, sink, sink.limits.records_per_call, result, max_events=max_events):
        before = result.events
        send(sink, batch, result, max_attempts=max_attempts, sleep=sleep)
        if progress:
            progress(result.events - before)
        if rate:
            ahead = result.events / rate - (clock() - started)
            if ahead > 0:
                sleep(ahead)
    result.seconds = clock() - started
    return result


def open_sink(target: str, stream: str) -> Sink:
    from lake_pipeline.storage import aws

    if target == "firehose":
        return FirehoseSink(aws.client("firehose"), stream)
    if target == "kinesis":
        return KinesisSink(aws.client("kinesis"), stream)
    raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
