"""make freshness's pieces: the small object it drops, the cheap ledger poll, the percentiles."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from lake_pipeline.devtools.freshness import LedgerWatch, percentile, small_object
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import LocalStorage
from lake_pipeline.tables.lake import Lake


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile(values, 0.5) == 10.5
    assert round(percentile(values, 0.95), 2) == 19.05
    assert percentile(values, 1.0) == 20.0 and percentile([7.0], 0.95) == 7.0


def test_the_ledger_watch_sees_an_object_once_its_batch_committed_and_not_before(settings, raw_dir):
    now = datetime.now(UTC)
    rng = random.Random(1)
    storage = LocalStorage(str(raw_dir))
    first, second = (object_key("freshness", now, ".gz", f"{i}0000000-0000-4000-8000-000000000000") for i in (1, 2))
    storage.write(first, small_object(rng, 5, now))
    watch = LedgerWatch(Lake.from_settings(settings))
    assert not watch.holds(first)  # no ledger yet
    summary = ingest_keys(settings, [first])
    assert summary.total("inserted") == 5  # the dropped object is valid, fresh, and holds 5 distinct events
    assert watch.holds(first)
    storage.write(second, small_object(rng, 5, now))
    assert not watch.holds(second)  # the ledger did not move: not even scanned
    ingest_keys(settings, [second])
    assert watch.holds(second)
