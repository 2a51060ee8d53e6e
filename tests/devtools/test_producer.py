"""`lake produce` batching, limits, retries and pacing, against fake Firehose/Kinesis clients."""

from __future__ import annotations

import orjson
import pytest

from lake_pipeline.devtools.producer import (
    FIREHOSE_LIMITS,
    MIB,
    FirehoseSink,
    KinesisSink,
    ProduceError,
    Record,
    SyntheticEvents,
    produce,
)
from lake_pipeline.devtools.synthetic import event_names


class FakeFirehose:
    """put_record_batch that fails the records listed in ``fail`` (by call number) and checks the API limits."""

    def __init__(self, fail: dict[int, set[int]] | None = None, error="ServiceUnavailableException"):
        self.fail = fail or {}
        self.error = error
        self.calls: list[list[bytes]] = []

    def put_record_batch(self, DeliveryStreamName, Records):  # noqa: N803 (boto3 names)
        assert len(Records) <= 500 and sum(len(r["Data"]) for r in Records) <= 4 * MIB
        assert all(len(r["Data"]) <= 1000 * 1024 for r in Records)
        failing = self.fail.get(len(self.calls), set())
        self.calls.append([r["Data"] for r in Records])
        responses = [{"ErrorCode": self.error, "ErrorMessage": "slow down"} if i in failing else {"RecordId": str(i)}
                     for i in range(len(Records))]
        return {"FailedPutCount": len(failing), "RequestResponses": responses}


class FakeKinesis:
    def __init__(self):
        self.calls = []

    def put_records(self, StreamName, Records):  # noqa: N803
        self.calls.append(Records)
        failed = {0} if len(self.calls) == 1 else set()
        out = [{"ErrorCode": "ProvisionedThroughputExceededException"} if i in failed else {"SequenceNumber": "1"}
               for i in range(len(Records))]
        return {"FailedRecordCount": len(failed), "Records": out}


def _records(n: int, size: int = 10) -> list[Record]:
    return [Record(b"{" + str(i).encode().rjust(size, b"0") + b"}", f"k{i}") for i in range(n)]


def test_calls_hold_at_most_500_records_and_4_mib():
    fake = FakeFirehose()
    result = produce(FirehoseSink(fake, "s"), _records(1234), sleep=lambda s: None)
    assert [len(c) for c in fake.calls] == [500, 500, 234]
    big = _records(10, size=900 * 1024)  # 9 MiB in ten records
    fake = FakeFirehose()
    produce(FirehoseSink(fake, "s"), big, sleep=lambda s: None)
    assert [len(c) for c in fake.calls] == [4, 4, 2]
    assert result.records == 1234 and result.calls == 3


def test_records_over_the_per_record_limit_are_counted_not_sent():
    fake = FakeFirehose()
    huge = Record(b"x" * (FIREHOSE_LIMITS.bytes_per_record + 1), "k")
    result = produce(FirehoseSink(fake, "s"), [*_records(3), huge], sleep=lambda s: None)
    assert (result.records, result.oversized) == (3, 1)


def test_failed_records_are_resent_with_backoff_until_delivered():
    fake = FakeFirehose(fail={0: {1, 3}, 1: {1}})  # call 0 fails records 1 and 3; the resend of record 3 fails again
    sleeps = []
    records = _records(5)
    result = produce(FirehoseSink(fake, "s"), records, sleep=sleeps.append)
    assert result.records == 5 and result.retried == 3 and result.calls == 3
    assert fake.calls[1] == [records[1].data, records[3].data] and fake.calls[2] == [records[3].data]
    assert len(sleeps) == 2 and all(0 <= s <= 5 for s in sleeps)
    assert result.errors == {"ServiceUnavailableException": 3}


def test_gives_up_with_a_clear_error_after_max_attempts():
    fake = FakeFirehose(fail={i: {0} for i in range(10)})
    with pytest.raises(ProduceError, match=r"1 record\(s\) still failing after 4 attempts to s \(ServiceUnavailable"):
        produce(FirehoseSink(fake, "s"), _records(2), max_attempts=4, sleep=lambda s: None)


def test_kinesis_uses_put_records_with_partition_keys_and_resends_throttled_records():
    fake = FakeKinesis()
    result = produce(KinesisSink(fake, "stream"), _records(3), sleep=lambda s: None)
    assert result.records == 3 and result.retried == 1
    assert [r["PartitionKey"] for r in fake.calls[0]] == ["k0", "k1", "k2"] and len(fake.calls[1]) == 1


def test_rate_paces_calls():
    clock = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        clock[0] += s

    fake = FakeFirehose()
    result = produce(FirehoseSink(fake, "s"), _records(250), rate=100, sleep=sleep, clock=lambda: clock[0])
    assert [len(c) for c in fake.calls] == [100, 100, 50]  # about one second's worth per call
    assert sum(sleeps) == pytest.approx(2.5) and result.seconds == pytest.approx(2.5)


def test_synthetic_events_follow_the_contract_and_count_what_they_made():
    source = SyntheticEvents(300, seed=1, duplicates=0.1, malformed=0.05, clock=lambda: 1763643600.25)
    records = list(source)
    assert len(records) == 300 + source.produced["duplicates"] + source.produced["malformed"]
    assert source.produced["duplicates"] > 0 and source.produced["malformed"] > 0
    good = [orjson.loads(r.data) for r in records[:1]]
    assert good[0]["event_name"] in event_names() and good[0]["created_at"] in (1763643600.25, 1763643600)
    assert records[0].partition_key == good[0]["event_uuid"]
    fresh = [r.partition_key for r in SyntheticEvents(5)] + [r.partition_key for r in SyntheticEvents(5)]
    assert len(set(fresh)) == 10  # no seed: two runs never share event_uuids
