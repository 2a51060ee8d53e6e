"""What the hourly mart computes, from rows of ``events`` (no table access, no Dagster here).

Both ways of updating ``hourly_event_counts`` (marts/hourly.py) start from the same grouping
of event rows by (hour, event_name, event_type, event_subtype, user_id), in DuckDB
(:data:`GROUPED_SQL`): ``payload.user_id`` is what ``json_extract_string`` gives
(``contract.USER_ID_SQL``: none for a payload DuckDB's JSON reader rejects; strings
unquoted, numbers as written, exact beyond 64 bits), and the hour is the first 13 characters
of ``created_datetime``.

- **Recompute** (:func:`recompute`): every row of some hours; the counts are sums over the
  groups and the number of non-null users, the state rows are the groups with a user.
- **Add** (:func:`add_batch`): the rows of new batches only; their (hour, name, user) not yet
  in the state are the new users, which with the new events are added to the mart's rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import duckdb
import polars as pl
import pyarrow as pa

from lake_pipeline.contract import CREATED_AT, USER_ID_SQL
from lake_pipeline.duck import connection

HOURLY_COUNTS_SCHEMA = pa.schema(
    [
        pa.field("event_hour", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_subtype", pa.string(), nullable=True),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("unique_users", pa.int64(), nullable=False),
    ]
)
KEYS = ["event_hour", "event_name", "event_type", "event_subtype"]
CELL = ["event_hour", "event_name"]
# The columns of `events` the mart reads.
EVENT_COLUMNS = ["created_datetime", "event_name", "event_type", "event_subtype", "payload"]
# Rows per chunk streamed from Polars into DuckDB (memory is bounded by chunks, not by hours).
CHUNK_ROWS = 256 * 1024

GROUPED_SQL = f"""
SELECT
    CAST(substr(created_datetime, 1, 13) || ':00:00+00' AS TIMESTAMPTZ) AS event_hour,
    event_name,
    event_type,
    event_subtype,
    {USER_ID_SQL} AS user_id,
    count(*)::BIGINT AS events
FROM hour_rows
GROUP BY ALL
"""

_COUNTS_SQL = """
SELECT event_hour, event_name, event_type, event_subtype, sum(events)::BIGINT AS events,
       count(user_id)::BIGINT AS unique_users
FROM grouped GROUP BY ALL
"""

_USERS_SQL = """
SELECT event_hour, event_name, user_id FROM grouped WHERE user_id IS NOT NULL
"""


def hour_key(ts: datetime) -> str:
    """'YYYY-MM-DDTHH' of a UTC hour: the first 13 characters of created_datetime."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H")


def hour_start(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)


def _epoch(key: str) -> float:
    return hour_start(key).timestamp()


def connect() -> duckdb.DuckDBPyConnection:
    con = connection()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _arrow_stream(frame: pl.LazyFrame) -> pa.RecordBatchReader | None:
    """The rows of ``frame`` as a stream of Arrow batches of CHUNK_ROWS (None when there are none)."""
    chunks = iter(frame.collect_batches(chunk_size=CHUNK_ROWS, maintain_order=False))
    for first in chunks:
        if first.height:
            break
    else:
        return None
    schema = first.to_arrow().schema

    def batches():
        yield from first.to_arrow().to_batches()
        for df in chunks:
            yield from df.to_arrow().cast(schema).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _group(con: duckdb.DuckDBPyConnection, rows: pa.RecordBatchReader | pa.Table) -> None:
    """Group ``rows`` (event rows of EVENT_COLUMNS) into DuckDB's table ``grouped``."""
    con.register("hour_rows", rows)
    con.execute(f"CREATE OR REPLACE TEMP TABLE grouped AS {GROUPED_SQL}")
    con.unregister("hour_rows")


def _hours_by_date(hours: Iterable[str]) -> dict[str, list[str]]:
    by_date: dict[str, list[str]] = defaultdict(list)
    for key in sorted(set(hours)):
        by_date[key[:10]].append(key)
    return dict(sorted(by_date.items()))


def _date_rows(events: pl.LazyFrame, day: str, keys: list[str]) -> pl.LazyFrame:
    """The rows of hours ``keys`` of date ``day``: the date's partitions, pruned by the files' and
    row groups' created_at statistics, then filtered exactly on created_datetime."""
    return events.filter(
        (pl.col("event_date") == date.fromisoformat(day))
        & (pl.col(CREATED_AT) >= _epoch(keys[0]) - 1)
        & (pl.col(CREATED_AT) < _epoch(keys[-1]) + 3601)
        & pl.col("created_datetime").str.slice(0, 13).is_in(keys)
    ).select(EVENT_COLUMNS)


def recompute(events: pl.LazyFrame, hours: Iterable[str], counts: Callable[[pa.Table], None],
              users: bool = True) -> Iterator[pa.Table]:
    """Recompute ``hours`` from ``events`` (a scan of one version), one date at a time: yields each
    date's distinct (event_hour, event_name, user_id) with a user (unless not ``users``), hands
    each date's hourly_event_counts rows to ``counts``."""
    con = connect()
    for day, keys in _hours_by_date(hours).items():
        stream = _arrow_stream(_date_rows(events, day, keys))
        if stream is None:
            continue
        _group(con, stream)
        counts(con.sql(_COUNTS_SQL).to_arrow_table().cast(HOURLY_COUNTS_SCHEMA))
        if users:
            yield con.sql(_USERS_SQL).to_arrow_table()


def hourly_counts(events: pl.LazyFrame, hours: Iterable[str]) -> pa.Table:
    """hourly_event_counts rows of ``hours``, computed from ``events`` (a scan of one version)."""
    parts: list[pa.Table] = []
    for _ in recompute(events, hours, parts.append, users=False):
        pass
    if not parts:
        return HOURLY_COUNTS_SCHEMA.empty_table()
    return pa.concat_tables(parts).sort_by([("event_hour", "ascending"), ("event_name", "ascending")])


@dataclass
class BatchDelta:
    """What new batches add: the new (hour, name, user) of the state, and the mart rows of their hours."""

    new_users: pl.DataFrame  # event_hour, event_name, user_id
    mart_rows: pa.Table  # every row of the touched hours, updated
    hours: list[str]
    rows_read: int  # event rows of the new batches
    state_rows_read: int  # state rows decoded to find ``seen``


def group_new_rows(rows: pa.Table) -> pl.DataFrame:
    """The new batches' event rows, grouped (see :data:`GROUPED_SQL`)."""
    con = connect()
    _group(con, rows)
    return pl.from_arrow(con.sql("SELECT * FROM grouped").to_arrow_table())


def user_triples(grouped: pl.DataFrame) -> pl.DataFrame:
    """The distinct (hour, name, user) of grouped rows that have a user."""
    return grouped.filter(pl.col("user_id").is_not_null()).select(*CELL, "user_id").unique()


def add_batch(grouped: pl.DataFrame, triples: pl.DataFrame, seen: pl.DataFrame, mart_hours: pl.DataFrame,
              rows_read: int, state_rows_read: int) -> BatchDelta:
    """Add the new batches' rows (``grouped``, and their :func:`user_triples`) to the mart's rows
    of their hours (``mart_hours``).

    ``seen``: state rows that include every (hour, name, user) of the batches the state holds
    (:func:`~lake_pipeline.marts.users.seen_users`). A (hour, name, user)
    not among them is a new user of its cell; the batches' events are added as they are (dedupe
    already dropped every duplicate)."""
    fresh = triples.join(seen, on=[*CELL, "user_id"], how="anti")
    added = (
        grouped.group_by(KEYS).agg(pl.col("events").sum())
        .join(fresh.group_by(CELL).agg(pl.len().alias("unique_users")), on=CELL, how="left")
        .with_columns(pl.col("unique_users").fill_null(0))
    )
    frame = pl.from_arrow(mart_hours) if isinstance(mart_hours, pa.Table) else mart_hours
    merged = (
        pl.concat([frame.select(*KEYS, "events", "unique_users"),
                   added.select(*KEYS, "events", "unique_users")], how="vertical_relaxed")
        .group_by(KEYS)
        .agg(pl.col("events").sum(), pl.col("unique_users").sum())
        .sort(CELL)
    )
    hours = sorted({hour_key(h) for h in added.get_column("event_hour").unique().to_list()})
    return BatchDelta(fresh, merged.to_arrow().cast(HOURLY_COUNTS_SCHEMA), hours, rows_read, state_rows_read)
