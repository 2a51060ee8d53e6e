"""Key files of the mart's users state (business logic; no Dagster here).

When compaction rewrites a date of ``_hourly_event_users`` as level 0 (marts/users.py
``compact_state``), it also writes that date's rows as one Arrow IPC file under
``_key_files/`` of the state's directory: ``cell``, ``user_key`` and ``key2`` (a second,
independent 64-bit hash of event_name and user_id), sorted by (cell, user_key), in record
batches of BATCH_ROWS rows. The schema metadata holds the first (cell, user_key) of every
batch, and the data files the key file stands for. A commit of the state names it (txn
``KEY_FILE_APP_ID.<day number>``, whose version is the token in the file's name).

Why: a batch's late events each touch a cell of an earlier date, and a cell at 9M events a
day holds ~3,600 users. Read from Parquet, each such event cost the (cell, user_key) of about
two 4,096-row groups and the date's footer (1 MB and ~20 ms for 2,000 row groups). From the
key file it costs one record batch of BATCH_ROWS (512) rows, found in a directory of 16 bytes a batch.

A triple is in the key file's rows when its (cell, user_key, key2) is: a match on the hour and
name's CRC-32, the user's 64-bit key and a second 64-bit hash of name and user together, as the
seen-keys index takes two 64-bit hashes of an event_uuid for the same event (a chance of about
2^-128 per pair that it isn't). A key file is used only while the snapshot holds every file it
stands for; files added to the date since (appends above level 0) are read from Parquet beside
it, and a date whose level 0 was rewritten since (a recompute) is read from Parquet as before.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, Transaction

from lake_pipeline.settings import HOURLY_USERS_TABLE
from lake_pipeline.tables.lake import Lake
from lake_pipeline.transforms.dedupe import uuid_hash

KEY_FILE_APP_ID = "lake_pipeline.hourly_users.key_file"
KEY_FILES_DIR = "_key_files"  # under the state's directory; Delta ignores names that start with "_"
# 512, not 2,048: a late event's look-up reads one batch, so its cost follows the batch size. On a
# 9M-a-day date's key file, 150 late triples took 9.4 ms at 2,048 rows a batch and 5.7 ms at 512
# (3.8 ms at 256); the directory of first pairs grows from 88 KiB to 353 KiB (base64), decoded once
# per open.
BATCH_ROWS = 512
KEY2 = "key2"
KEY2_SEED = 0x51ED27B5A3C4E6F1
SCHEMA = pa.schema([pa.field("cell", pa.int64(), nullable=False), pa.field("user_key", pa.int64(), nullable=False),
                    pa.field(KEY2, pa.int64(), nullable=False)])
_EPOCH = date(1970, 1, 1)


def app_id(day: date) -> str:
    """The txn naming ``day``'s key file (its version: the file's token)."""
    return f"{KEY_FILE_APP_ID}.{(day - _EPOCH).days}"


def path(day: date, token: int) -> str:
    """Where the key file of ``day`` named ``token`` is, relative to the state's directory."""
    return f"{KEY_FILES_DIR}/{day.isoformat()}-{token}.arrow"


def key2(frame: pl.DataFrame) -> pl.Series:
    """The second hash of each row's (event_name, user_id)."""
    text = frame.select(pl.concat_str(["event_name", "user_id"], separator="\x00")).to_series()
    return pl.Series(KEY2, uuid_hash(text, KEY2_SEED).view(np.int64))


def _sortable(cell: np.ndarray, key: np.ndarray) -> np.ndarray:
    """(cell, user_key) pairs as 16 bytes that sort as the pairs do (big-endian, sign bit flipped)."""
    out = np.empty((len(cell), 2), dtype=">u8")
    out[:, 0] = cell.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    out[:, 1] = key.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
    return out.view("S16").ravel()


def write(lake: Lake, table: DeltaTable, day: date, rows: pl.DataFrame, covers: list[str],
          state_txn: Transaction | None) -> None:
    """Write the key file of ``day`` (``rows``: cell, user_key, event_name, user_id of every row
    of its level-0 files ``covers`` in ``table``) and name it in a commit on ``table`` (with
    ``state_txn``, so that an update that committed in between makes it a CommitRace)."""
    rows = rows.sort("cell", "user_key")
    cell, key = rows.get_column("cell").to_numpy(), rows.get_column("user_key").to_numpy()
    firsts = _sortable(cell[::BATCH_ROWS], key[::BATCH_ROWS])
    meta = {b"lake.covers": json.dumps(sorted(covers)).encode(), b"lake.firsts": base64.b64encode(firsts.tobytes())}
    keys = rows.select("cell", "user_key", key2(rows)).to_arrow().cast(SCHEMA).replace_schema_metadata(meta)
    before = table.transaction_version(app_id(day))
    token = uuid.uuid4().int >> 65  # a new name each time: a file being read is never replaced
    lake.write_arrow_file(HOURLY_USERS_TABLE, path(day, token), keys, BATCH_ROWS)
    # An empty append still commits (the txns name the file); delta-rs writes no data file.
    lake.commit(HOURLY_USERS_TABLE, pa.schema(table.schema().to_arrow()).empty_table(), snapshot=table,
                txn=state_txn, also=[Transaction(app_id(day), token)],
                metadata={"lake/operation": "hourly users key file"})
    # The date's older key files go, but for the one named until now: an update that opened it
    # on an earlier snapshot may still read it (the next rewrite of the date deletes it).
    keep = {path(day, token), *([path(day, before)] if before is not None else [])}
    for old in lake.side_files(HOURLY_USERS_TABLE, KEY_FILES_DIR):
        if old.rsplit("/", 1)[-1].startswith(day.isoformat() + "-") and old not in keep:
            lake.delete_side_file(HOURLY_USERS_TABLE, old)


def drop_before(lake: Lake, first: date) -> int:
    """Delete the key files of dates before ``first`` (their dates are read from Parquet). Returns how many."""
    return lake.delete_dated_side_files(HOURLY_USERS_TABLE, KEY_FILES_DIR, first)


@dataclass
class KeyFile:
    """A date's key file, open: the data files it stands for, and each batch's first (cell, user_key)."""

    reader: pa.ipc.RecordBatchFileReader
    covers: set[str]
    firsts: np.ndarray  # S16, see _sortable


def open_for(lake: Lake, table: DeltaTable, day: date, present: set[str]) -> KeyFile | None:
    """The key file ``table`` names for ``day``, while ``present`` (the date's data files in
    ``table``) holds every file it stands for; else None (read the date from Parquet)."""
    token = table.transaction_version(app_id(day))
    if token is None:
        return None
    reader = lake.arrow_file(HOURLY_USERS_TABLE, path(day, token))
    meta = (reader.schema.metadata or {}) if reader is not None else {}
    if not {b"lake.covers", b"lake.firsts"} <= meta.keys():
        return None
    covers = set(json.loads(meta[b"lake.covers"]))
    firsts = np.frombuffer(base64.b64decode(meta[b"lake.firsts"]), dtype="S16")
    if not covers or not covers <= present or len(firsts) != reader.num_record_batches:
        return None
    return KeyFile(reader, covers, firsts)


def seen(kf: KeyFile, wanted: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """The rows of ``wanted`` (cell, user_key, key2, ...) whose (cell, user_key, key2) the key file
    holds, and the key-file rows read to know: one record batch per distinct pair at most."""
    pairs = _sortable(wanted.get_column("cell").to_numpy(), wanted.get_column("user_key").to_numpy())
    batches = np.unique(np.searchsorted(kf.firsts, pairs, side="right") - 1)
    batches = batches[batches >= 0]
    if len(batches) == 0:
        return wanted.clear(), 0
    read = [kf.reader.get_batch(int(j)) for j in batches]
    rows = pl.from_arrow(pa.Table.from_batches(read).replace_schema_metadata(None))
    found = wanted.join(rows, on=["cell", "user_key", KEY2], how="semi")
    return found, int(sum(b.num_rows for b in read))
