"""On S3 the first landing hour is the first key of one listing (keys come in time order)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lake_pipeline.defs.shared import arrival_partitions_start, first_landing_hour
from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import open_storage

pytestmark = pytest.mark.e2e


def test_the_first_landing_hour_of_an_s3_landing_zone(bootstrapped):
    raw = open_storage(bootstrapped.raw_uri)
    now = datetime(2026, 12, 1, 10, 20, tzinfo=UTC)
    assert first_landing_hour(raw) is None
    assert arrival_partitions_start(bootstrapped, now) == datetime(2026, 12, 1, 7, tzinfo=UTC)  # nothing landed
    for arrived in (datetime(2025, 12, 3, 8, 5, tzinfo=UTC), datetime(2025, 11, 20, 13, 59, tzinfo=UTC)):
        raw.write(object_key("events", arrived, ".gz", "0000"), b"")
    raw.write("_manifest.json", b"{}")  # outside the layout (sorts after the years)
    assert first_landing_hour(raw) == datetime(2025, 11, 20, 13, tzinfo=UTC)
    assert arrival_partitions_start(bootstrapped, now + timedelta(days=1)) == datetime(2025, 11, 20, 13, tzinfo=UTC)
