"""The hourly mart recomputed independently of lake_pipeline/marts (Python's json and Polars),
and the mart and its users state as they are on disk, for the marts tests."""

from __future__ import annotations

import json

import polars as pl
from deltalake import DeltaTable

from lake_pipeline.marts.hourly import HOURLY_COUNTS_SCHEMA
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, HOURLY_USERS_TABLE


def user_text(payload: str) -> str | None:
    """payload.user_id as text, the way the mart compares them: strings as-is, other JSON as written;
    none for a payload holding a lone surrogate escape (DuckDB's JSON reader rejects it)."""
    try:
        payload.encode("utf-8")
        json.dumps(json.loads(payload), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None
    value = json.loads(payload).get("user_id")
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _events_with_users(lake_dir) -> pl.DataFrame:
    events = pl.from_arrow(DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table())
    users = [user_text(p) for p in events.get_column("payload").to_list()]
    return events.with_columns(
        pl.from_epoch((pl.col("created_at") // 3600 * 3600).cast(pl.Int64), time_unit="s")
        .dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias("event_hour"),
        pl.Series("user", users, dtype=pl.String),
    )


def expected_counts(lake_dir) -> pl.DataFrame:
    """hourly_event_counts recomputed independently: Python's json and Polars, from created_at."""
    return (
        _events_with_users(lake_dir)
        .group_by("event_hour", "event_name", "event_type", "event_subtype")
        .agg(pl.len().cast(pl.Int64).alias("events"),
             pl.col("user").drop_nulls().n_unique().cast(pl.Int64).alias("unique_users"))
        .select(HOURLY_COUNTS_SCHEMA.names)
        .sort("event_hour", "event_name")
    )


def expected_users(lake_dir) -> pl.DataFrame:
    """Every distinct (event_hour, event_name, user_id) with a user, sorted."""
    return (
        _events_with_users(lake_dir).filter(pl.col("user").is_not_null())
        .select("event_hour", "event_name", pl.col("user").alias("user_id")).unique()
        .sort("event_hour", "event_name", "user_id")
    )


def mart_frame(lake_dir) -> pl.DataFrame:
    table = DeltaTable(str(lake_dir / HOURLY_COUNTS_TABLE)).to_pyarrow_table()
    assert table.schema.equals(HOURLY_COUNTS_SCHEMA, check_metadata=False)
    return pl.from_arrow(table).sort("event_hour", "event_name")


def users_frame(lake_dir) -> pl.DataFrame:
    table = DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).to_pyarrow_table()
    return pl.from_arrow(table).select("event_hour", "event_name", "user_id").sort("event_hour", "event_name",
                                                                                      "user_id")


def assert_mart_exact(lake_dir) -> pl.DataFrame:
    """The mart equals the independent recomputation row for row, and so does its users state."""
    got, want = mart_frame(lake_dir), expected_counts(lake_dir)
    assert got.equals(want), (got, want)
    users, want_users = users_frame(lake_dir), expected_users(lake_dir)
    assert users.equals(want_users), (users.height, want_users.height)
    return got
