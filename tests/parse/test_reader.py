"""Parallel parsing gives exactly the serial result, in arrival order."""

from __future__ import annotations

from datetime import UTC, datetime

from lake_pipeline.parse import reader
from lake_pipeline.storage.objects import LocalStorage
from lake_pipeline.devtools.synthetic import generate


def test_parallel_parse_equals_serial_parse(tmp_path, monkeypatch):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 6000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=300, seed=3, malformed=0.02)
    objects = list(storage.list())
    assert len(objects) == 12
    serial = reader.parse_keys(storage.uri, [o.key for o in objects])
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 0)
    parallel = reader.parse_later(storage.uri, objects, workers=2, parser="python")()
    assert parallel.records.equals(serial.records)
    assert parallel.quarantine.equals(serial.quarantine)
    assert parallel.records_per_object == serial.records_per_object
    assert parallel.sizes == serial.sizes == {o.key: o.size for o in objects}
    assert parallel.quarantine.num_rows > 0


def test_runs_are_contiguous_and_cover_every_key():
    from lake_pipeline.storage.objects import ObjectInfo

    objs = [ObjectInfo(f"k{i:02d}", size) for i, size in enumerate([5, 1, 1, 1, 9, 1, 1, 1, 1, 3])]
    runs = reader._runs(objs, 4)
    assert [k for run in runs for k in run] == [o.key for o in objs]
    assert 1 < len(runs) <= 4 and all(runs)


def test_prefetched_parse_is_used_once_and_equals_a_fresh_parse(tmp_path, monkeypatch):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 3000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=600, seed=4)
    objects = list(storage.list())
    monkeypatch.setattr(reader, "PARALLEL_MIN_BYTES", 0)
    reader.prefetch(storage.uri, objects, workers=2)
    assert len(reader._PREFETCHED) == 1
    assert reader.parse_later(storage.uri, objects, workers=2, parser="python") is not reader._PREFETCHED  # other parser
    assert len(reader._PREFETCHED) == 1
    got = reader.parse_later(storage.uri, objects, workers=2)()
    assert reader._PREFETCHED == {}  # consumed
    fresh = reader.parse_keys(storage.uri, [o.key for o in objects])
    assert got.records.to_arrow().cast(fresh.records.schema).equals(fresh.records) and got.quarantine.equals(fresh.quarantine)
