"""The Ray engine's tables equal the local engine's, row for row, on a real two-node cluster."""

from __future__ import annotations

import pytest

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.settings import EVENTS_TABLE, load_settings
from lake_pipeline.storage.objects import LocalStorage
from tests.support.cases import built_cases
from tests.support.records import HOUR
from tests.support.runs import synthetic_landing_zone
from tests.support.tables import table_rows

pytestmark = pytest.mark.e2e  # a Ray cluster in other processes


def _ingest(engine: str, raw, lake, cluster, **overrides):
    settings = load_settings(raw_uri=str(raw), lake_uri=str(lake), engine=engine, ray_address=cluster.address,
                             **overrides)
    summary = ingest_keys(settings, [o.key for o in list_pending(settings)])
    return settings, summary


def _both(raw, tmp_path, cluster, **overrides):
    local = _ingest("local", raw, tmp_path / "lake-local", cluster, **overrides)[1]
    ray = _ingest("ray", raw, tmp_path / "lake-ray", cluster, **overrides)[1]
    return local, ray, table_rows(tmp_path / "lake-local"), table_rows(tmp_path / "lake-ray")


def test_every_contract_case_gives_the_same_tables(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    storage = LocalStorage(str(raw))
    for i, (name, (data, _)) in enumerate(sorted(built_cases().items())):
        storage.write(object_key("events", HOUR.replace(minute=i % 60, second=i // 60), "", f"case-{i:04d}"), data)
    local, ray, want, got = _both(raw, tmp_path, ray_cluster_)
    assert want[EVENTS_TABLE] and want["quarantine"]  # the cases give both kinds of rows
    assert got == want
    (lb,), (rb,) = local.batches, ray.batches
    assert (rb.records, rb.inserted, rb.duplicates, rb.quarantined) == (lb.records, lb.inserted, lb.duplicates,
                                                                       lb.quarantined)
    assert (rb.engine, lb.engine) == ("ray", "local") and rb.nodes == 2 and rb.tasks > 1


def test_synthetic_batches_with_duplicates_late_and_malformed_records(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    synthetic_landing_zone(raw, 20_000, seed=11, object_seconds=300)
    # Several chunks per batch and several batches: cross-chunk and cross-batch duplicates both occur.
    overrides = {"batch_max_objects": 6, "chunk_max_bytes": 64 * 1024}
    first = _both(raw, tmp_path, ray_cluster_, **overrides)
    assert first[1].total("duplicates") > 0 and first[1].total("quarantined") > 0
    assert first[3] == first[2]
    # Redeliveries a few minutes later: dropped against history on both engines.
    storage = LocalStorage(str(raw))
    for i, obj in enumerate(list(storage.list())[:3]):
        storage.write(object_key("events", HOUR.replace(hour=14, minute=i), ".gz", f"redelivered-{i}"), storage.read(obj.key))
    second = _both(raw, tmp_path, ray_cluster_, **overrides)
    assert second[3] == second[2]
    assert [b.duplicates for b in second[1].batches] == [b.duplicates for b in second[0].batches]
    assert second[1].total("duplicates") > 0
    # Both read the seen-keys index (each Ray bucket its own range of it), and wrote the same rows to it.
    assert {b.dedupe_source for s in second[:2] for b in s.batches} == {"index"}
    assert second[1].total("dedupe_rows_read") > 0


def test_the_no_transform_mode_gives_the_same_tables(ray_cluster_, tmp_path):
    raw = tmp_path / "raw"
    synthetic_landing_zone(raw, 3_000, seed=12, object_seconds=600)
    local, ray, want, got = _both(raw, tmp_path, ray_cluster_, enrich=False)
    assert got == want and want[EVENTS_TABLE]
    assert len(want[EVENTS_TABLE][0]) == 8  # the raw columns, event_date and lineage: no derived columns
    assert ray.total("duplicates") == local.total("duplicates") > 0
