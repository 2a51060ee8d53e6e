"""``GET /users/{user_id}/events``: one user's events, newest first, from a per-user table.

``events`` is laid out for time and type (partitions ``event_date``/``event_type``), and the
user is inside ``payload``: finding one user there means reading every partition. So
``lake serve`` keeps ``_user_events`` (``USER_EVENTS_TABLE``), a copy of the events that carry
a ``payload.user_id`` (as DuckDB's ``json_extract_string`` gives it, the hourly mart's rule),
partitioned by ``user_bucket`` (a stable hash of the user id, :data:`USER_BUCKETS` buckets):

- **Kept by following events.** :meth:`UserEvents.sync` reads the commits after the version
  the table reflects (the version is the table's Delta transaction, so the append that moves
  it is idempotent: several servers may sync, one commit lands): ingest appends bring the rows
  of their batch ids; compactions nothing; anything else (a rebuild's delete) a full re-read,
  streamed partition by partition into one overwrite.
- **Sorted for lookups.** :func:`~lake_pipeline.maintenance.compaction.compact_user_events`
  Z-orders a bucket by ``user_id`` into files of :data:`FILE_BYTES` once it holds
  :data:`UNSORTED_FILES` files whose ``user_id`` ranges overlap (each sync adds one per
  bucket), so every sorted file covers a narrow range of users.
- **A lookup reads a bounded number of files.** From the log's statistics (held in memory per
  table version) it picks the user's bucket and, there, the files whose ``user_id`` min/max
  contain the user: the unsorted files since the last sort and one or two sorted ones, however
  large the lake grows. Pages are ordered by (``created_at``, ``event_uuid``) descending; the
  cursor is the last row's pair.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Transaction

from lake_pipeline.contract import BATCH_ID, USER_ID_SQL
from lake_pipeline.duck import connection
from lake_pipeline.serve.follow import appended_batches
from lake_pipeline.serve.requests import BadRequest, limit, millis
from lake_pipeline.settings import EVENTS_TABLE, USER_EVENTS_TABLE
from lake_pipeline.storage.uris import join
from lake_pipeline.tables.lake import INGEST_APP_ID, Lake
from lake_pipeline.transforms.dedupe import bucket_of

USER_BUCKETS = 64
FILE_BYTES = 8 * 1024 * 1024  # sorted files of about this size: one read finds a user
UNSORTED_FILES = 8  # a bucket is sorted again once this many of its files overlap
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
VACUUM_EVERY_SECONDS = 3600  # the replaced files are deleted once older than the vacuum retention
EVENT_COLUMNS = ["event_uuid", "event_name", "created_at", "event_date", "payload"]

USER_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("user_bucket", pa.int32(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("created_at", pa.float64(), nullable=False),
        pa.field("event_uuid", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
    ]
)
PARTITION_BY = ["user_bucket"]

_USERS_SQL = f"""
SELECT * FROM (
  SELECT {USER_ID_SQL} AS user_id, created_at, event_uuid, event_name, event_date, payload FROM rows
) WHERE user_id IS NOT NULL
"""


def user_rows(events: pa.Table) -> pa.Table:
    """The rows of ``_user_events`` for some rows of ``events``: those with a payload.user_id."""
    with connection() as con:
        con.register("rows", events.select(EVENT_COLUMNS))
        rows = con.sql(_USERS_SQL).to_arrow_table()
    buckets = bucket_of(pl.Series(rows.column("user_id").to_pylist(), dtype=pl.String), USER_BUCKETS)
    rows = rows.add_column(0, "user_bucket", pa.array(buckets.to_numpy(), pa.int32()))
    return rows.cast(USER_EVENTS_SCHEMA)


def user_bucket(user_id: str) -> int:
    return int(bucket_of(pl.Series([user_id], dtype=pl.String), USER_BUCKETS)[0])


def encode_cursor(created_at: float, event_uuid: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, event_uuid])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, event_uuid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(event_uuid)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"cursor {cursor!r} is not a next_cursor this API gave") from exc


class UserEvents:
    """Keeps ``_user_events`` (:meth:`maintain`) and answers pages from it (:meth:`page`)."""

    def __init__(self, lake: Lake, vacuum_retention_hours: int = 168, clock=time.monotonic,
                 events_version: Callable[[], int | None] | None = None):
        """``events_version``: the newest events version known without opening the table (the
        hourly analytics' follower gives it); when it has not moved and no bucket was left to sort,
        :meth:`maintain` returns at once instead of opening both tables (~40 ms of CPU)."""
        self.lake = lake
        self.events_version = events_version
        self._settled: int | None = None  # the events version after which nothing was left to do
        self._files: pa.Table | None = None  # path, bucket, min/max user_id of the table's files
        self._lock = threading.Lock()
        self.synced_version: int | None = None
        self.vacuum_retention_hours = vacuum_retention_hours
        self.clock = clock
        self._vacuumed_at: float | None = None

    # --- Keeping the table ------------------------------------------------------------

    def indexed_version(self) -> int | None:
        table = self.lake.table(USER_EVENTS_TABLE)
        return None if table is None else table.transaction_version(INGEST_APP_ID)

    def sync(self) -> int | None:
        """Bring ``_user_events`` up to the newest events version; return that version."""
        events = self.lake.table(EVENTS_TABLE)
        if events is None:
            return None
        version, since = events.version(), self.indexed_version()
        batches = None if since is None else appended_batches(events, since)
        if batches is None:
            self._rebuild(events)
        elif batches:
            scan = self.lake.scan(EVENTS_TABLE, snapshot=events)
            data = scan.filter(pl.col(BATCH_ID).is_in(batches)).select(EVENT_COLUMNS).collect().to_arrow()
            self.lake.append(USER_EVENTS_TABLE, user_rows(data), batch_id=version, partition_by=PARTITION_BY)
        self.synced_version = version
        return version

    def _rebuild(self, events: DeltaTable) -> None:
        """Every user row of ``events`` in one overwrite, streamed one partition at a time."""
        self.lake.create(USER_EVENTS_TABLE, USER_EVENTS_SCHEMA, PARTITION_BY)
        scan = self.lake.scan(EVENTS_TABLE, snapshot=events)
        actions = self.lake.add_actions(EVENTS_TABLE, snapshot=events)
        dates = sorted(set(actions.column("partition.event_date").to_pylist())) if actions is not None else []

        def batches() -> Iterator[pa.RecordBatch]:
            for d in dates:
                part = scan.filter(pl.col("event_date") == d).select(EVENT_COLUMNS).collect().to_arrow()
                yield from user_rows(part).to_batches()

        reader = pa.RecordBatchReader.from_batches(USER_EVENTS_SCHEMA, batches())
        self.lake.overwrite(USER_EVENTS_TABLE, reader, txn=Transaction(INGEST_APP_ID, events.version()),
                            metadata={"lake/operation": "user_events_rebuild"})

    def maintain(self) -> None:
        """Sync, sort the buckets that need it, and take the table's new file list."""
        from lake_pipeline.maintenance.compaction import compact_user_events, vacuum

        vacuum_due = self._vacuumed_at is None or self.clock() - self._vacuumed_at >= VACUUM_EVERY_SECONDS
        known = self.events_version() if self.events_version is not None else None
        if known is not None and known == self._settled and not vacuum_due:
            return
        version = self.sync()
        sorted_buckets = compact_user_events(self.lake, FILE_BYTES, UNSORTED_FILES)
        self.reload()
        self._settled = None if sorted_buckets else version  # another bucket may be due next time
        if vacuum_due:
            self._vacuumed_at = self.clock()  # the files sorts replaced, once past the retention
            vacuum(self.lake, self.vacuum_retention_hours, table=USER_EVENTS_TABLE)

    def reload(self) -> None:
        table = self.lake.table(USER_EVENTS_TABLE)
        files = None if table is None else self.lake.add_actions(USER_EVENTS_TABLE, snapshot=table)
        with self._lock:
            self._files = files

    # --- Answering --------------------------------------------------------------------

    def files_for(self, user_id: str) -> list[str]:
        """URIs of the files that may hold ``user_id`` (its bucket; user_id statistics contain it)."""
        with self._lock:
            files = self._files
        if files is None or files.num_rows == 0:
            return []
        mine = pc.equal(files.column("partition.user_bucket"), user_bucket(user_id))
        lo, hi = files.column("min.user_id"), files.column("max.user_id")
        inside = pc.and_kleene(pc.fill_null(pc.less_equal(lo, user_id), True),
                               pc.fill_null(pc.greater_equal(hi, user_id), True))
        paths = files.filter(pc.and_(mine, inside)).column("path").to_pylist()
        return [join(self.lake.table_uri(USER_EVENTS_TABLE), p) for p in paths]

    def page(self, user_id: str, params: Mapping[str, str]) -> dict:
        start, end = millis(params, "from", required=False), millis(params, "to", required=False)
        size = limit(params, DEFAULT_LIMIT, MAX_LIMIT)
        cursor = decode_cursor(params["cursor"]) if params.get("cursor") else None
        uris = self.files_for(user_id)
        if not uris:
            return {"user_id": user_id, "events": [], "next_cursor": None}
        where = pl.col("user_id") == user_id
        if start is not None:
            where &= pl.col("created_at") >= start / 1000
        if end is not None:
            where &= pl.col("created_at") < end / 1000
        if cursor is not None:
            at, uid = cursor
            where &= (pl.col("created_at") < at) | ((pl.col("created_at") == at) & (pl.col("event_uuid") < uid))
        rows = (
            pl.scan_parquet(uris, hive_partitioning=False, storage_options=self.lake.storage_options)
            .filter(where)
            .select("created_at", "event_uuid", "event_name", "event_date", "payload")
            .sort(["created_at", "event_uuid"], descending=True)
            .head(size + 1)
            .collect()
            .rows()
        )
        more = len(rows) > size
        rows = rows[:size]
        events = [
            {"event_uuid": uid, "event_name": name, "created_at": at, "event_date": day.isoformat(),
             "payload": orjson.Fragment(payload)}
            for at, uid, name, day, payload in rows
        ]
        next_cursor = encode_cursor(rows[-1][0], rows[-1][1]) if more else None
        return {"user_id": user_id, "events": events, "next_cursor": next_cursor}
