"""The mart's distinct-users state ``_hourly_event_users`` (business logic; no Dagster here).

One row per (``event_hour``, ``event_name``, ``user_id``) that occurs in ``events`` with a
non-null ``payload.user_id`` (the text DuckDB's ``json_extract_string`` gives, as in the
mart), partitioned by ``event_date`` (the UTC date of ``event_hour``). The mart's
``unique_users`` of a cell (hour, name) is the number of state rows of that cell, so an
update after a batch only has to know which of the batch's (hour, name, user) are new: it
reads the state's row groups of the cells the batch touched, keeps the batch's own triples
among them, and appends the others.

**Layout, so that a read follows the touched cells.** Each row carries ``cell``, one int64
per (hour, name): the hour since the epoch in the high 32 bits, the CRC-32 of the name in the
low 32 (two names of one hour that share a CRC share a cell key, which costs a read, not
exactness: the rows read are then matched on the name too). Every file is written sorted by
(cell, user_key) in row groups of ROW_GROUP_ROWS, with statistics on ``cell`` and ``level``
only. A read for some cells opens only the files whose ``cell`` range (in the Delta log) holds
one of their keys, and reads only the row groups whose range does (from the footer, as
Polars' scan does not prune row groups for ``is_in``).

**A late batch reads keys, not names.** Each row also carries ``user_key``, a stable 64-bit
hash of its user_id. A batch with few triples for the rows it reads (late events, each in a
cell of its own) matches them on (cell, user_key), two int64 columns, and reads event_name
and user_id only in the row groups where a key matched; the answer is decided on those, so a
64-bit collision costs one more row group, never a wrong count. Decoding every user_id of
the touched row groups was most of such a read (9M events a day: 4.2M strings for 17k
triples). A state written before user_key (its table has no such column) keeps its layout
and is read by names, as before, until a full rebuild of the mart rewrites it.

**Levels.** Appends are level 2 (one small file per touched date and batch). After a batch,
the update merges every date that has MERGE_FILES files above level 0: their rows above level
0 become one sorted level-1 file per date, all in one commit (a predicate overwrite
``level >= 1``, whose files' statistics keep level-0 files out of it). The batch never
rewrites a date in full: that is compaction's (:func:`compact_state`, on the compaction
schedule and in `lake compact`), which rewrites a date as level 0 once its rows above level 0
are 1/COMPACT_SHARE of its level-0 rows (or it has none), and merges the others' upper files
as the batch does. So a batch's merge rewrites at most about an hour's rows of a date (the
rows since the last compaction) plus 1/COMPACT_SHARE of the date; on a lake fed at 9M events
a day, a batch that also rewrote the current date in full took 0.2 s more for it.

**Key files.** Compaction also writes, for each of the last LAKE_DEDUPE_RETENTION_DAYS dates,
a key file of its level-0 rows (marts/user_keys.py); a read takes a date's level-0 rows from it
(one 512-row batch per triple, user_keys.BATCH_ROWS) while it stands for the date's level-0 files, and the rest
from Parquet as above. At 9M events a day it cut a batch's state read from 2.5M rows in 0.27-0.45 s
to 0.69M rows in 0.08-0.12 s.

Every data commit carries a Delta transaction (app id ``MART_APP_ID`` of marts/hourly.py) whose
version is the ``events`` version it reflects, like the mart's own: when the two differ (an
update that stopped between its two commits), the update recomputes instead of adding.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Transaction

from lake_pipeline.marts import user_keys
from lake_pipeline.settings import HOURLY_USERS_TABLE
from lake_pipeline.tables.lake import CommitConflict, CommitRace, FileLayout, Lake, row_group_ranges, row_group_sizes
from lake_pipeline.transforms.dedupe import uuid_hash

USER_KEY = "user_key"  # a stable 64-bit hash of user_id (see "A late batch reads keys" above)
USERS_SCHEMA = pa.schema(
    [
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("cell", pa.int64(), nullable=False),
        pa.field("level", pa.int8(), nullable=False),
        pa.field("event_hour", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field(USER_KEY, pa.int64(), nullable=False),
    ]
)
USERS_PARTITIONS = ["event_date"]
CELL = ["event_hour", "event_name"]
ROW_GROUP_ROWS = 4096
LAYOUT = FileLayout(ROW_GROUP_ROWS, no_statistics=("event_hour", "event_name", "user_id", USER_KEY),
                    no_dictionary=(USER_KEY,))
# A date with this many files above level 0 is merged (see the module's docstring).
MERGE_FILES = 16
# Compaction rewrites a date in full once its rows above level 0 are 1/COMPACT_SHARE of its level-0 rows.
COMPACT_SHARE = 16
# seen_users keeps only the triples' own rows when it read this many times more rows than triples.
FEW_TRIPLES = 4


def snapshot(lake: Lake) -> DeltaTable | None:
    """The state's current version (None: no state yet). An update reads and commits on one
    snapshot, so that a writer that committed in between makes its commit a :class:`CommitRace`."""
    return lake.table(HOURLY_USERS_TABLE)


def state_version(lake: Lake, app_id: str) -> int | None:
    """The events version the state reflects (None: no state yet)."""
    table = snapshot(lake)
    return None if table is None else table.transaction_version(app_id)


def _name_crc(names: pl.Series) -> pl.Series:
    if names.is_empty():
        return pl.Series(names.name, [], dtype=pl.Int64)
    unique = names.unique().to_list()
    crc = {n: zlib.crc32(n.encode()) for n in unique}
    return names.replace_strict(crc, return_dtype=pl.Int64)


def with_cell(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (with event_hour, event_name) and its cell key."""
    hours = frame.get_column("event_hour").dt.epoch("s") // 3600
    return frame.with_columns((hours * (1 << 32) + _name_crc(frame.get_column("event_name"))).alias("cell"))


def user_key(user_ids: pl.Series) -> pl.Series:
    """The stable 64-bit key of each (non-null) user_id: the seen-keys index's hash, and 0 for
    the empty id (which that hash refuses)."""
    named = user_ids.str.len_bytes() > 0
    if named.all():
        keys = uuid_hash(user_ids)
    else:
        keys = np.zeros(user_ids.len(), dtype=np.uint64)
        keys[named.to_numpy()] = uuid_hash(user_ids.filter(named))
    return pl.Series(USER_KEY, keys.view(np.int64))


def as_state(users: pl.DataFrame, level: int = 2) -> pa.Table:
    """(event_hour, event_name, user_id) rows as state rows of ``level``, sorted by (cell, user_key);
    rows that bring their ``user_key`` (state rows being merged) keep it."""
    key = users.get_column(USER_KEY) if USER_KEY in users.columns else user_key(users.get_column("user_id"))
    return (
        with_cell(users.select(*CELL, "user_id"))
        .with_columns(pl.col("event_hour").dt.date().alias("event_date"), pl.lit(level, pl.Int8).alias("level"),
                      key.alias(USER_KEY))
        .sort("cell", USER_KEY)  # two int64s: half the sort by (cell, user_id), and no reader needs that order
        .select(USERS_SCHEMA.names)
        .to_arrow()
        .cast(USERS_SCHEMA)
    )


def as_state_batches(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[pa.RecordBatch]:
    """Level-0 state rows of each part of ``batches`` (event_hour, event_name, user_id), sorted."""
    for part in batches:
        frame = pl.from_arrow(part)
        if frame.height:
            yield from as_state(frame, level=0).to_batches()


def may_hold(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Which [lo, hi] ranges hold one of ``keys`` (sorted, unique)."""
    at = np.searchsorted(keys, lo, side="left")
    return (at < len(keys)) & (keys[np.minimum(at, len(keys) - 1)] <= hi)


def row_groups_holding(parquet, column: str, keys: np.ndarray) -> list[int]:
    """The row groups of one Parquet file whose ``column`` statistics (int64) can hold one of ``keys``
    (sorted, unique); a row group without statistics is always read."""
    lo, hi = row_group_ranges(parquet, column)
    return np.flatnonzero(may_hold(keys, lo, hi)).tolist()


def _files(lake: Lake, table) -> pl.DataFrame:
    """The state's data files: path, day, min_cell, max_cell, level (the lowest), rows (from the log)."""
    actions = lake.add_actions(HOURLY_USERS_TABLE, snapshot=table)
    names = {"path": "path", "partition.event_date": "day", "min.cell": "min_cell", "max.cell": "max_cell",
             "min.level": "level", "num_records": "rows"}
    schema = {"path": pl.String, "day": pl.Date, "min_cell": pl.Int64, "max_cell": pl.Int64, "level": pl.Int8,
              "rows": pl.Int64}
    frame = pl.from_arrow(actions) if actions.num_rows else pl.DataFrame()
    return pl.DataFrame(
        {new: (frame.get_column(old).cast(schema[new]) if old in frame.columns else
               pl.Series(new, [None] * frame.height, dtype=schema[new])) for old, new in names.items()},
        schema=schema,
    )


def _has_keys(table: DeltaTable) -> bool:
    """Whether ``table`` (the state) has ``user_key``: one written before it has not."""
    return USER_KEY in {f.name for f in table.schema().fields}


def _schema_of(table: DeltaTable) -> pa.Schema:
    """The state's schema as ``table`` has it: USERS_SCHEMA, without user_key for a state written before it."""
    return USERS_SCHEMA if _has_keys(table) else USERS_SCHEMA.remove(USERS_SCHEMA.get_field_index(USER_KEY))


def _fit(rows: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table | pa.RecordBatch:
    """``rows`` (USERS_SCHEMA) with the columns of ``schema`` (:func:`_schema_of`)."""
    return rows if USER_KEY in schema.names else rows.drop_columns([USER_KEY])


def seen_users(lake: Lake, triples: pl.DataFrame, table: DeltaTable | None) -> tuple[pl.DataFrame, int]:
    """State rows (event_hour, event_name, user_id) of ``table`` (a snapshot of the state) that
    tell which of ``triples`` (distinct event_hour, event_name, user_id) it holds: every one of
    those, and perhaps other rows of their cells. Also how many state rows were read to know:
    only the files and row groups whose ``cell`` statistics can hold one of the triples' cells
    (for a few triples, the rows whose cell and key were read; names only where a key matched)."""
    if table is None or triples.height == 0:
        return _rows_as_triples(_NO_ROWS), 0
    cells = with_cell(triples.select(CELL).unique())
    keys = np.unique(cells.get_column("cell").to_numpy())
    dates = set(cells.get_column("event_hour").dt.date().to_list())
    files = _files(lake, table).filter(pl.col("day").is_in(list(dates)))
    key_files = _key_files(lake, table, files)
    if key_files:  # their files are read from the key files, the others from Parquet
        covered = set().union(*(kf.covers for kf in key_files.values()))
        files = files.filter(~pl.col("path").is_in(list(covered)))
    from_keys, key_rows_read = _seen_in_key_files(key_files, triples, cells)
    lo = files.get_column("min_cell").fill_null(np.iinfo(np.int64).min).to_numpy()
    hi = files.get_column("max_cell").fill_null(np.iinfo(np.int64).max).to_numpy()
    groups = []  # (file, its row groups to read, their rows)
    for path in files.get_column("path").filter(may_hold(keys, lo, hi)).to_list():
        parquet = lake.parquet_file(HOURLY_USERS_TABLE, path)
        wanted = row_groups_holding(parquet, "cell", keys)
        if wanted:
            groups.append((parquet, wanted, row_group_sizes(parquet)[wanted]))
    read = int(sum(sizes.sum() for _, _, sizes in groups))
    if read == 0:
        rows = _NO_ROWS
    elif triples.height * FEW_TRIPLES < read:
        # A few triples (late events in big cells): only their own rows, found by key.
        rows = _their_rows(groups, triples.join(cells, on=CELL).select("cell", "event_name", "user_id"))
    else:
        # About as many triples as rows (a big batch): every row of the cells, matched on the
        # cells alone (the small side); the caller's anti-join then does the one big join.
        rows = (_read((parquet, wanted) for parquet, wanted, _ in groups).filter(pl.col("cell").is_in(pl.Series(keys).implode()))
                .join(cells.select("cell", "event_name"), on=["cell", "event_name"], how="semi"))
    if from_keys.height:
        rows = pl.concat([rows, from_keys])
    return _rows_as_triples(rows), read + key_rows_read


def _key_files(lake: Lake, table: DeltaTable, files: pl.DataFrame) -> dict:
    """The usable key files (marts/user_keys.py) of the dates of ``files`` (the state's files of
    the dates a read needs), by date; none in a state without user_key."""
    if not _has_keys(table) or files.height == 0:
        return {}
    out = {}
    for (day,), paths in files.group_by("day"):
        kf = user_keys.open_for(lake, table, day, set(paths.get_column("path").to_list()))
        if kf is not None:
            out[day] = kf
    return out


def _seen_in_key_files(key_files: dict, triples: pl.DataFrame, cells: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The triples (cell, event_name, user_id) that the key files hold, and the key-file rows read."""
    if not key_files:
        return _NO_ROWS, 0
    wanted = (triples.join(cells, on=CELL).with_columns(pl.col("event_hour").dt.date().alias("day"))
              .filter(pl.col("day").is_in(list(key_files))))
    wanted = wanted.with_columns(user_key(wanted.get_column("user_id")), user_keys.key2(wanted))
    parts, read = [], 0
    for (day,), of_day in wanted.group_by("day"):
        found, n = user_keys.seen(key_files[day], of_day)
        parts.append(found.select("cell", "event_name", "user_id"))
        read += n
    return (pl.concat(parts) if parts else _NO_ROWS), read


_NO_ROWS = pl.DataFrame(schema={"cell": pl.Int64, "event_name": pl.String, "user_id": pl.String})


def _rows_as_triples(rows: pl.DataFrame) -> pl.DataFrame:
    hour = pl.from_epoch(pl.col("cell") // (1 << 32) * 3600, time_unit="s")
    return rows.select(hour.dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias("event_hour"), "event_name",
                       "user_id")


def _read(groups: Iterable[tuple[pq.ParquetFile, list[int]]]) -> pl.DataFrame:
    """(cell, event_name, user_id) of the row groups of ``groups`` (files and their row groups)."""
    parts = [parquet.read_row_groups(wanted, columns=["cell", "event_name", "user_id"]) for parquet, wanted in groups]
    return pl.from_arrow(pa.concat_tables(parts, promote_options="default")) if parts else _NO_ROWS


def _their_rows(groups: list[tuple[pq.ParquetFile, list[int], np.ndarray]], wanted: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``wanted`` (cell, event_name, user_id) that ``groups`` hold. In a file with
    user_key, the (cell, user_key) of the row groups are read first, and names and users only
    of the row groups where one of the triples' keys is; a file without it is read by names."""
    wanted = wanted.with_columns(user_key(wanted.get_column("user_id")))
    keys = wanted.select("cell", USER_KEY)
    narrowed = []
    for parquet, row_groups, sizes in groups:
        if USER_KEY in parquet.schema_arrow.names:
            found = (pl.from_arrow(parquet.read_row_groups(row_groups, columns=["cell", USER_KEY]))
                     .with_columns(pl.Series("group", np.repeat(row_groups, sizes)))
                     .filter(pl.col(USER_KEY).is_in(keys.get_column(USER_KEY).implode()))
                     .join(keys, on=["cell", USER_KEY], how="semi"))
            row_groups = found.get_column("group").unique().sort().to_list()
        if row_groups:
            narrowed.append((parquet, row_groups))
    return _read(narrowed).join(wanted.select("cell", "event_name", "user_id"), on=["cell", "event_name", "user_id"],
                                how="semi")


def _txn(app_id: str, events_version: int) -> Transaction:
    return Transaction(app_id, events_version)


def _race(lake: Lake, what: str) -> CommitRace:
    return CommitRace(f"another update of {lake.table_uri(HOURLY_USERS_TABLE)} {what}; run `lake marts` again")


def _created(lake: Lake, app_id: str) -> DeltaTable:
    """The state, created empty for an update that found none (:meth:`Lake.create_empty`)."""
    return lake.create_empty(HOURLY_USERS_TABLE, USERS_SCHEMA, USERS_PARTITIONS, app_id=app_id)


def append(lake: Lake, rows: pa.Table, app_id: str, events_version: int, metadata: dict[str, str],
           table: DeltaTable | None) -> None:
    """Add new state rows in one commit on top of ``table`` (the snapshot the update read; None:
    there was no state) that records ``events_version`` (a commit even with no rows). Another
    update that committed since makes it a :class:`CommitRace`: the caller looks again."""
    table = table if table is not None else _created(lake, app_id)
    try:
        lake.commit(HOURLY_USERS_TABLE, _fit(rows, _schema_of(table)), snapshot=table,
                    txn=_txn(app_id, events_version), partition_by=USERS_PARTITIONS, metadata=metadata, layout=LAYOUT)
    except CommitConflict as exc:
        raise _race(lake, f"committed at the same time ({exc})") from exc


def hours_predicate(hours: Iterable[str]) -> str:
    """A Delta predicate matching the state rows of ``hours`` ('YYYY-MM-DDTHH' keys)."""
    keys = sorted(set(hours))
    dates = sorted({k[:10] for k in keys})
    return (f"event_date IN ({', '.join(repr(d) for d in dates)}) AND "
            f"event_hour IN ({', '.join(repr(k + ':00:00Z') for k in keys)})")


def replace(lake: Lake, rows: Iterable[pa.RecordBatch], app_id: str, events_version: int, metadata: dict[str, str],
            table: DeltaTable | None, hours: Iterable[str] | None = None) -> None:
    """Replace the state's rows (all of them, or those of ``hours``) with ``rows`` (event_hour,
    event_name, user_id batches, one date at a time) in one commit, as level 0, on top of
    ``table`` (the snapshot the update read; None: there was no state)."""
    if table is None:
        table, hours = _created(lake, app_id), None
    predicate = hours_predicate(hours) if hours is not None else None
    # Replacing every row gives a state written before user_key the key (and its schema).
    schema = USERS_SCHEMA if hours is None else _schema_of(table)
    stream = pa.RecordBatchReader.from_batches(schema, (_fit(b, schema) for b in as_state_batches(rows)))
    lake.overwrite(HOURLY_USERS_TABLE, stream, predicate=predicate, snapshot=table, txn=_txn(app_id, events_version),
                   metadata=metadata, layout=LAYOUT, replace_schema=schema != _schema_of(table))


def _per_date(lake: Lake, table: DeltaTable) -> pl.DataFrame:
    """Per date of the state: its files above level 0, their rows, and the rows of level 0."""
    upper = pl.col("level").fill_null(2) >= 1
    return _files(lake, table).group_by("day").agg(
        upper.sum().alias("upper_files"), pl.col("rows").filter(upper).sum().alias("upper_rows"),
        pl.col("rows").filter(~upper).sum().alias("base_rows")).sort("day")


def _merge_dates(lake: Lake, table: DeltaTable, days: list, app_id: str, full: bool) -> pa.Table:
    """Rewrite the rows above level 0 of ``days`` as level 1 (``full``: every row of them as
    level 0), in one commit on ``table``, with the state's own transaction (``app_id`` at the
    version it reflects), so that an update's append of one of those dates in between makes it
    a CommitRace instead of being overwritten by rows read before it. Returns the rows written."""
    listed = ", ".join(f"'{d.isoformat()}'" for d in sorted(days))
    scan = lake.scan(HOURLY_USERS_TABLE, snapshot=table).filter(pl.col("event_date").is_in(list(days)))
    version = table.transaction_version(app_id)
    txn = _txn(app_id, version) if version is not None else None
    schema = _schema_of(table)
    columns = [*CELL, "user_id", *([USER_KEY] if USER_KEY in schema.names else [])]  # keys kept, not hashed again
    level = 0 if full else 1
    rows = (scan if full else scan.filter(pl.col("level") >= 1)).select(columns).collect()
    predicate = f"event_date IN ({listed})" + ("" if full else " AND level >= 1")
    written = _fit(as_state(rows, level=level), schema)
    lake.overwrite(HOURLY_USERS_TABLE, written, predicate=predicate, snapshot=table, txn=txn,
                   metadata={"lake/operation": "hourly users merge", "level": str(level)}, layout=LAYOUT)
    return written


def keep_files_few(lake: Lake, app_id: str, table: DeltaTable | None = None) -> bool:
    """After a batch: merge the upper files of every date with MERGE_FILES of them into one
    level-1 file each, in one commit (True when it did), on ``table`` (default: the current
    version). Never a date in full (:func:`compact_state` does that, off the batch path).
    A :class:`CommitRace` when another update committed to the state since ``table``."""
    table = table if table is not None else snapshot(lake)
    if table is None:
        return False
    due = _per_date(lake, table).filter(pl.col("upper_files") >= MERGE_FILES).get_column("day").to_list()
    if due:
        _merge_dates(lake, table, due, app_id, full=False)
        lake.vacuum(HOURLY_USERS_TABLE)  # the table's retention (7 days unless configured), enforced
    return bool(due)


def compact_state(lake: Lake, app_id: str, table: DeltaTable | None = None,
                  key_file_days: int = 7, today: date | None = None, vacuum: bool = True) -> dict[str, int]:
    """Compaction of the state (the compaction schedule's and `lake compact`'s): each date whose
    rows above level 0 are 1/COMPACT_SHARE of its level-0 rows, or that has no level 0, is
    rewritten as level 0 (one commit per date, so that memory follows one date); the upper
    files of every other date with two or more become one level-1 file (one commit). Then each
    of the last ``key_file_days`` dates (to ``today``) that has no usable key file gets one
    (marts/user_keys.py), and older dates' key files are deleted. Returns the dates rewritten,
    the dates merged, the rows rewritten and the key files written. A :class:`CommitRace` when
    an update committed to the state in between: what was committed before it stays, and the
    next compaction does the rest. ``vacuum``: vacuum the state after rewriting (its retention)."""
    table = table if table is not None else snapshot(lake)
    done = {"dates_rewritten": 0, "dates_merged": 0, "rows_rewritten": 0, "key_files_written": 0}
    if table is None:
        return done
    dates = _per_date(lake, table).filter(pl.col("upper_files") >= 1)
    full = dates.filter(pl.col("upper_rows") * COMPACT_SHARE >= pl.col("base_rows"))
    merged = dates.filter((pl.col("upper_rows") * COMPACT_SHARE < pl.col("base_rows")) & (pl.col("upper_files") >= 2))
    keyed = _has_keys(table)
    first = (today or datetime.now(UTC).date()) - timedelta(days=key_file_days - 1)
    for day, upper_rows, base_rows in full.select("day", "upper_rows", "base_rows").iter_rows():
        rows = _merge_dates(lake, table, [day], app_id, full=True)
        done["dates_rewritten"] += 1
        done["rows_rewritten"] += int(upper_rows or 0) + int(base_rows or 0)
        if keyed and day >= first:  # its key file from the rows just written, not read back
            base = _level0_files(lake, table).filter(pl.col("day") == day)
            done["key_files_written"] += _write_key_file(lake, table, app_id, day, base, pl.from_arrow(rows))
    if merged.height:
        _merge_dates(lake, table, merged.get_column("day").to_list(), app_id, full=False)
        done["dates_merged"] = merged.height
        done["rows_rewritten"] += int(merged.get_column("upper_rows").sum())
    if vacuum and (full.height or merged.height):
        lake.vacuum(HOURLY_USERS_TABLE)  # the table's retention (7 days unless configured), enforced
    if keyed:
        done["key_files_written"] += _write_key_files(lake, table, app_id, first)
        user_keys.drop_before(lake, first)
    return done


def _level0_files(lake: Lake, table: DeltaTable) -> pl.DataFrame:
    return _files(lake, table).filter(pl.col("level") == 0)


def _write_key_files(lake: Lake, table: DeltaTable, app_id: str, first: date) -> int:
    """A key file for each date from ``first`` whose level-0 files have none that is usable. Returns how many."""
    files = _level0_files(lake, table).filter(pl.col("day") >= first).sort("day")
    return sum(_write_key_file(lake, table, app_id, day, base) for (day,), base in
               files.group_by("day", maintain_order=True))


def _write_key_file(lake: Lake, table: DeltaTable, app_id: str, day: date, base: pl.DataFrame,
                    rows: pl.DataFrame | None = None) -> int:
    """The key file of ``day`` (``base``: its level-0 files), unless it has a usable one; from
    ``rows`` (its level-0 rows, as just written) or else read back. Returns 1 when written."""
    paths = base.get_column("path").to_list()
    if not paths or user_keys.open_for(lake, table, day, set(paths)) is not None:
        return 0
    if rows is None:
        rows = (lake.scan(HOURLY_USERS_TABLE, snapshot=table)
                .filter((pl.col("event_date") == day) & (pl.col("level") == 0))
                .select("cell", USER_KEY, "event_name", "user_id").collect())
    if rows.height != int(base.get_column("rows").sum()):  # no row counts in the log: not covered
        return 0
    version = table.transaction_version(app_id)
    user_keys.write(lake, table, day, rows, paths, _txn(app_id, version) if version is not None else None)
    return 1
