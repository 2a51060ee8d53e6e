"""An hour's ad counts (clicks, impressions, unique users across both) from the mart and its state
equal a DuckDB query over `events`, through added batches."""

from __future__ import annotations

from datetime import timedelta

import duckdb
from deltalake import DeltaTable

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.marts import hourly as marts
from lake_pipeline.marts.ads import ad_hour
from lake_pipeline.settings import EVENTS_TABLE
from tests.support.records import HOUR, T0, event, write_object

CLICK, IMPRESSION = "ad:click", "ad:impression"


def _duckdb(lake_dir, start) -> tuple[int, int, int]:
    events = DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table()
    con = duckdb.connect()
    lo = start.timestamp()
    return con.execute(
        """SELECT count(*) FILTER (event_name = ?), count(*) FILTER (event_name = ?),
                  count(DISTINCT payload ->> '$.user_id')
           FROM events WHERE event_name IN (?, ?) AND created_at >= ? AND created_at < ?""",
        [CLICK, IMPRESSION, CLICK, IMPRESSION, lo, lo + 3600],
    ).fetchone()


def test_ad_hour_equals_duckdb_over_events_after_each_batch(settings, raw_dir, lake, lake_dir):
    assert ad_hour(lake, HOUR, CLICK, IMPRESSION).events_version is None  # no mart yet
    batches = [
        [event("a", CLICK, T0 + 1, user_id="u1"), event("b", IMPRESSION, T0 + 2, user_id="u1"),
         event("c", IMPRESSION, T0 + 3, user_id="u2"), event("d", "page:view", T0 + 4, user_id="u3")],
        [event("e", CLICK, T0 + 5, user_id="u2"), event("f", CLICK, T0 + 6, user_id="u4"),
         event("g", IMPRESSION, T0 - 3600 + 7, user_id="u5"), event("h", CLICK, T0 + 8)],  # a late one, a userless one
    ]
    for minute, records in enumerate(batches, start=1):
        ingest_keys(settings, [write_object(raw_dir, records, minute=minute)])
        marts.update_hourly_counts(lake)
        for start in (HOUR, HOUR - timedelta(hours=1)):
            got = ad_hour(lake, start + timedelta(minutes=30), CLICK, IMPRESSION)
            assert (got.clicks, got.impressions, got.unique_users) == _duckdb(lake_dir, start)
            assert got.hour == start and got.events_version == marts.mart_events_version(lake)
    now = ad_hour(lake, HOUR, CLICK, IMPRESSION)
    assert (now.clicks, now.impressions, now.unique_users) == (4, 2, 3)  # u1, u2, u4
