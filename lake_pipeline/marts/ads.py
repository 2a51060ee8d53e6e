"""One hour's ad counts from the mart and its users state: clicks, impressions, unique users across both.

Clicks and impressions are the mart's ``events`` of the two event names (settings
``ad_click_event`` and ``ad_impression_event``). The users across both are the distinct
``user_id`` of the state rows of the two cells, a union the mart's per-name rows can't give.
Both tables are read at the same ``events`` version. The state commits first, so while an
update is between its two commits the state is ahead: the read is retried on new snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from lake_pipeline.marts.aggregate import hour_key, hour_start
from lake_pipeline.marts.hourly import MART_APP_ID
from lake_pipeline.settings import HOURLY_COUNTS_TABLE, HOURLY_USERS_TABLE
from lake_pipeline.tables.lake import Lake

ATTEMPTS = 5


@dataclass(frozen=True)
class AdHour:
    hour: datetime
    clicks: int
    impressions: int
    unique_users: int
    events_version: int | None  # the events version both reflect (None: no mart yet)


def ad_hour(lake: Lake, at: datetime, click: str, impression: str) -> AdHour:
    """The ad counts of the UTC hour holding ``at`` (settings ad_click_event, ad_impression_event)."""
    start = hour_start(hour_key(at))
    for _ in range(ATTEMPTS):
        mart, state = lake.table(HOURLY_COUNTS_TABLE), lake.table(HOURLY_USERS_TABLE)
        if mart is None or state is None:
            return AdHour(start, 0, 0, 0, None)
        version = mart.transaction_version(MART_APP_ID)
        if state.transaction_version(MART_APP_ID) == version:
            break
    else:
        raise RuntimeError(f"the mart and its users state in {lake.uri} stayed at different versions; "
                           "run `lake marts` to bring them together")
    names = [click, impression]
    counts = dict(
        lake.scan(HOURLY_COUNTS_TABLE, snapshot=mart)
        .filter((pl.col("event_hour") == start) & pl.col("event_name").is_in(names))
        .group_by("event_name").agg(pl.col("events").sum())
        .collect().iter_rows()
    )
    users = (
        lake.scan(HOURLY_USERS_TABLE, snapshot=state)
        .filter((pl.col("event_date") == start.date()) & (pl.col("event_hour") == start)
                & pl.col("event_name").is_in(names))
        .select(pl.col("user_id").n_unique())
        .collect().item()
    )
    return AdHour(start, int(counts.get(click, 0)), int(counts.get(impression, 0)), int(users), version)
