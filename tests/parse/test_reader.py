"""The chunk parser: parallel parsing gives exactly the serial result, in arrival order, and
a chunk begun early (the CLI's prefetch) is the one the batch later takes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from lake_pipeline.devtools.synthetic import generate
from lake_pipeline.parse import reader
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import LocalStorage, ObjectInfo


def test_parallel_parse_equals_serial_parse(tmp_path, monkeypatch):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 6000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=300, seed=3, malformed=0.02)
    objects = list(storage.list())
    assert len(objects) == 12
    serial = reader.parse_keys(storage.uri, [o.key for o in objects])
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 0)
    with reader.ChunkParser(storage.uri, parser="python", workers=2) as parser:
        parallel = parser.start(objects)()
        assert parser.worker_processes_started  # it really ran in worker processes
    assert parallel.records.equals(serial.records)
    assert parallel.quarantine.equals(serial.quarantine)
    assert parallel.records_per_object == serial.records_per_object
    assert parallel.sizes == serial.sizes == {o.key: o.size for o in objects}
    assert parallel.quarantine.height > 0


def test_runs_are_contiguous_and_cover_every_key():
    objs = [ObjectInfo(f"k{i:02d}", size) for i, size in enumerate([5, 1, 1, 1, 9, 1, 1, 1, 1, 3])]
    runs = reader._runs(objs, 4)
    assert [k for run in runs for k in run] == [o.key for o in objs]
    assert 1 < len(runs) <= 4 and all(runs)


def test_a_prefetched_chunk_is_the_parse_the_batch_takes_once(tmp_path):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 3000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=600, seed=4)
    objects = list(storage.list())
    fresh = reader.parse_keys(storage.uri, [o.key for o in objects])
    with reader.ChunkParser(storage.uri) as parser:
        parser.prefetch(objects)
        assert parser.prefetched == 1
        # Another chunk does not take it; and since the bulk parser's one thread works in
        # order, once that other chunk is parsed, so is the prefetched one.
        assert parser.start(objects[:1])().records_per_object == {objects[0].key: fresh.records_per_object[objects[0].key]}
        assert parser.prefetched == 1
        for obj in objects:  # a fresh parse from here on could not read the objects
            (storage.root / obj.key).unlink()
        got = parser.start(objects)()
        assert parser.prefetched == 0  # taken, and only once:
        with pytest.raises(StorageError, match="disappeared"):
            parser.start(objects)()
    assert got.records.equals(fresh.records) and got.quarantine.equals(fresh.quarantine)
    assert got.records_per_object == fresh.records_per_object and got.sizes == fresh.sizes


@pytest.mark.heavy
def test_lake_ingest_uses_the_chunks_it_parsed_while_dagster_started(tmp_path, monkeypatch):
    """The CLI hands its ChunkParser to the run (the `chunk_parser` resource); the run takes
    the prefetched chunks instead of parsing them again."""
    import dagster as dg

    from tests.support.cli import invoke

    # 8 objects of 250 events (not 60 of ~35: a Dagster run per 2 of those was 30 runs, 36 s).
    generate(LocalStorage(str(tmp_path / "raw")), 2000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), seed=5,
             object_seconds=450)
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 0)  # prefetch even this small batch
    monkeypatch.setenv("LAKE_CHUNK_MAX_BYTES", "20000")  # several chunks
    monkeypatch.setenv("LAKE_BATCH_MAX_OBJECTS", "2")  # and several batches
    result = invoke("ingest", "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake"), "--quiet")
    assert result.exit_code == 0, result.output
    used = re.compile(r"([1-9]) of \1 chunk\(s\) parsed ahead of the run \(while Dagster started, or the batch "
                      r"before finished\) were used")
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        logs = [[e.message for e in instance.all_logs(run.run_id) if e.message] for run in runs]
    # The first batch's chunks were parsed while Dagster started, every later one's while the
    # batch before it committed and ran its checks and the mart: each run took all of them.
    assert len(runs) >= 3
    assert all(any(used.fullmatch(m) for m in messages) for messages in logs), [
        [m for m in ms if "parsed ahead" in m] for ms in logs]


def test_the_next_batchs_expected_chunks_begin_once_asked_and_stale_ones_are_dropped(tmp_path):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 3000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=600, seed=6)
    objects = list(storage.list())
    fresh = reader.parse_keys(storage.uri, [objects[1].key])
    with reader.ChunkParser(storage.uri) as parser:
        parser.prefetch(objects[:1])  # never taken: another ingest claimed it, say
        parser.expect([objects[1:2]])
        assert parser.prefetched == 1  # expected chunks wait to be asked
        parser.prefetch_expected()
        assert parser.prefetched == 1  # the stale one dropped, the expected one begun
        got = parser.start(objects[1:2])()
        assert parser.prefetched == 0 and parser.prefetches_taken == 1
        parser.prefetch_expected()  # nothing expected any more
        assert parser.prefetched == 0
        # A batch that expects nothing (one resumed before the listed ones) keeps what was begun.
        parser.prefetch(objects[2:3])
        parser.prefetch_expected()
        assert parser.prefetched == 1
    assert got.records.equals(fresh.records) and got.records_per_object == fresh.records_per_object
