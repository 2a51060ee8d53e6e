"""The mart's distinct-users state ``_hourly_event_users`` (business logic; no Dagster here).

One row per (``event_hour``, ``event_name``, ``user_id``) that occurs in ``events`` with a
non-null ``payload.user_id`` (the text DuckDB's ``json_extract_string`` gives, as in the
mart), partitioned by ``event_date`` (the UTC date of ``event_hour``). The mart's
``unique_users`` of a cell (hour, name) is the number of state rows of that cell, so an
update after a batch only has to know which of the batch's (hour, name, user) are new:
it reads the state rows of the cells the batch touched (the dates' partitions, then a
semi-join on the cells; row-group statistics on ``event_hour`` prune within a date, as
full rebuilds write each date sorted by hour and name) and appends the new ones.

Every commit carries a Delta transaction (app id ``MART_APP_ID`` of marts/hourly.py) whose
version is the ``events`` version it reflects, like the mart's own: when the two differ
(an update that crashed between its two commits), the update recomputes instead of adding.
The state keeps its own files few (small appended files are bin-packed, big ones left).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import pyarrow as pa
from deltalake import Transaction

from lake_pipeline.settings import HOURLY_USERS_TABLE
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.tables.lake import CommitConflict, Lake

USERS_SCHEMA = pa.schema(
    [
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("event_hour", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
    ]
)
USERS_PARTITIONS = ["event_date"]
CELL = ["event_hour", "event_name"]
# Compact the state once it has this many files; files of at least COMPACT_TARGET_BYTES stay as they are.
COMPACT_FILES = 64
COMPACT_TARGET_BYTES = 32 * 1024 * 1024


def state_version(lake: Lake, app_id: str) -> int | None:
    """The events version the state reflects (None: no state yet)."""
    table = lake.table(HOURLY_USERS_TABLE)
    return None if table is None else table.transaction_version(app_id)


def as_state(users: pl.DataFrame) -> pa.Table:
    """(event_hour, event_name, user_id) rows as state rows (with their event_date)."""
    return (
        users.select(pl.col("event_hour").dt.date().alias("event_date"), *CELL, "user_id")
        .to_arrow()
        .cast(USERS_SCHEMA)
    )


def cell_users(lake: Lake, cells: pl.DataFrame) -> pl.DataFrame:
    """The state rows (event_hour, event_name, user_id) of ``cells`` (distinct event_hour, event_name)."""
    scan = lake.scan(HOURLY_USERS_TABLE)
    if scan is None or cells.height == 0:
        return pl.DataFrame(schema={"event_hour": pl.Datetime("us", "UTC"), "event_name": pl.String,
                                    "user_id": pl.String})
    dates = cells.get_column("event_hour").dt.date().unique().to_list()
    hours = cells.get_column("event_hour").unique()
    return (
        scan.filter(pl.col("event_date").is_in(dates) & pl.col("event_hour").is_between(hours.min(), hours.max()))
        .select(*CELL, "user_id")
        .join(cells.lazy(), on=CELL, how="semi")
        .collect()
    )


def _txn(app_id: str, events_version: int) -> Transaction:
    return Transaction(app_id, events_version)


def append(lake: Lake, rows: pa.Table, app_id: str, events_version: int, metadata: dict[str, str]) -> None:
    """Add new state rows in one commit that records ``events_version`` (a commit even with no rows)."""
    snapshot = lake.table(HOURLY_USERS_TABLE)
    if snapshot is None:
        lake.create(HOURLY_USERS_TABLE, USERS_SCHEMA, USERS_PARTITIONS)
        snapshot = lake.table(HOURLY_USERS_TABLE)
    try:
        lake.commit(HOURLY_USERS_TABLE, rows, snapshot=snapshot, txn=_txn(app_id, events_version),
                    partition_by=USERS_PARTITIONS, metadata=metadata)
    except CommitConflict as exc:
        raise StorageError(f"another update of {lake.table_uri(HOURLY_USERS_TABLE)} committed at the same time "
                           f"({exc}); run `lake marts` again") from exc


def hours_predicate(hours: Iterable[str]) -> str:
    """A Delta predicate matching the state rows of ``hours`` ('YYYY-MM-DDTHH' keys)."""
    keys = sorted(set(hours))
    dates = sorted({k[:10] for k in keys})
    return (f"event_date IN ({', '.join(repr(d) for d in dates)}) AND "
            f"event_hour IN ({', '.join(repr(k + ':00:00Z') for k in keys)})")


def replace(lake: Lake, rows: pa.RecordBatchReader, app_id: str, events_version: int, metadata: dict[str, str],
            hours: Iterable[str] | None = None) -> None:
    """Replace the state's rows (all of them, or those of ``hours``) with ``rows`` in one commit."""
    if not lake.exists(HOURLY_USERS_TABLE):
        lake.create(HOURLY_USERS_TABLE, USERS_SCHEMA, USERS_PARTITIONS)
        hours = None
    predicate = hours_predicate(hours) if hours is not None else None
    lake.overwrite(HOURLY_USERS_TABLE, rows, predicate=predicate, txn=_txn(app_id, events_version),
                   metadata=metadata)


def keep_files_few(lake: Lake) -> bool:
    """Bin-pack the state's small files once it has COMPACT_FILES of them (True when it did)."""
    table = lake.table(HOURLY_USERS_TABLE)
    if table is None or lake.add_actions(HOURLY_USERS_TABLE, snapshot=table).num_rows < COMPACT_FILES:
        return False
    lake.compact(HOURLY_USERS_TABLE, snapshot=table, target_size=COMPACT_TARGET_BYTES)
    lake.vacuum(HOURLY_USERS_TABLE)  # the table's retention (7 days unless configured), enforced
    return True
