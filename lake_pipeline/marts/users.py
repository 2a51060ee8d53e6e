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

**Levels.** Appends are level 2 (one small file per touched date and batch). Once a date has
MERGE_FILES files above level 0, its rows above level 0 are rewritten as one sorted level-1
file (a predicate overwrite ``level >= 1``, whose files' statistics keep level-0 files out of
it); once those are a quarter of the date's level-0 rows (or there are none), the whole date
is rewritten as level 0. A date is rewritten in full once per fourfold growth, and each
late-arriving row is rewritten a bounded number of times in between.

Every data commit carries a Delta transaction (app id ``MART_APP_ID`` of marts/hourly.py) whose
version is the ``events`` version it reflects, like the mart's own: when the two differ (an
update that stopped between its two commits), the update recomputes instead of adding.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, Transaction

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
BASE_SHARE = 4  # level >= 1 rows beyond 1/BASE_SHARE of the level-0 rows: rewrite the whole date
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
        return _rows_as_triples(_NO_ROWS), 0
    if triples.height * FEW_TRIPLES < read:
        # A few triples (late events in big cells): only their own rows, found by key.
        rows = _their_rows(groups, triples.join(cells, on=CELL).select("cell", "event_name", "user_id"))
    else:
        # About as many triples as rows (a big batch): every row of the cells, matched on the
        # cells alone (the small side); the caller's anti-join then does the one big join.
        rows = (_read((parquet, wanted) for parquet, wanted, _ in groups).filter(pl.col("cell").is_in(pl.Series(keys).implode()))
                .join(cells.select("cell", "event_name"), on=["cell", "event_name"], how="semi"))
    return _rows_as_triples(rows), read


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


def _merge_date(lake: Lake, table: DeltaTable, day, base_rows: int, app_id: str) -> None:
    """Rewrite one date's rows above level 0 as level 1, or the whole date as level 0: read and
    committed on ``table``, with the state's own transaction (``app_id`` at the version it
    reflects), so that an update's append of that date in between makes one of them a CommitRace
    instead of being overwritten by rows read before it."""
    scan = lake.scan(HOURLY_USERS_TABLE, snapshot=table).filter(pl.col("event_date") == day)
    version = table.transaction_version(app_id)
    txn = _txn(app_id, version) if version is not None else None
    schema = _schema_of(table)
    columns = [*CELL, "user_id", *([USER_KEY] if USER_KEY in schema.names else [])]  # keys kept, not hashed again
    upper = scan.filter(pl.col("level") >= 1).select(columns).collect()
    if upper.height * BASE_SHARE < base_rows:
        lake.overwrite(HOURLY_USERS_TABLE, _fit(as_state(upper, level=1), schema),
                       predicate=f"event_date = '{day.isoformat()}' AND level >= 1", snapshot=table, txn=txn,
                       metadata={"lake/operation": "hourly users merge", "level": "1"}, layout=LAYOUT)
    else:
        rows = scan.select(columns).collect()
        lake.overwrite(HOURLY_USERS_TABLE, _fit(as_state(rows, level=0), schema),
                       predicate=f"event_date = '{day.isoformat()}'", snapshot=table, txn=txn,
                       metadata={"lake/operation": "hourly users merge", "level": "0"}, layout=LAYOUT)


def keep_files_few(lake: Lake, app_id: str, table: DeltaTable | None = None) -> bool:
    """Merge the dates with MERGE_FILES files above level 0 (True when one was merged), on
    ``table`` (default: the current version; each merge moves it to the version it committed).
    A :class:`CommitRace` when another update committed to the state since ``table``."""
    table = table if table is not None else snapshot(lake)
    if table is None:
        return False
    files = _files(lake, table)
    per_date = files.group_by("day").agg(
        (pl.col("level").fill_null(2) >= 1).sum().alias("upper_files"),
        pl.col("rows").filter(pl.col("level") == 0).sum().alias("base_rows"))
    due = per_date.filter(pl.col("upper_files") >= MERGE_FILES)
    for day, base_rows in due.select("day", "base_rows").iter_rows():
        _merge_date(lake, table, day, int(base_rows or 0), app_id)
    if due.height:
        lake.vacuum(HOURLY_USERS_TABLE)  # the table's retention (7 days unless configured), enforced
    return due.height > 0
