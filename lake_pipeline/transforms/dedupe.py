"""Deduplication on event_uuid within a horizon (pure Polars; no I/O, no Dagster).

A record is a duplicate when a record with the same event_uuid was already
accepted (earlier in this batch, or in an earlier batch = ``history``) with a
created_at within ``horizon`` seconds of its own. The first arrival wins; the
frame must be in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl
import pyarrow as pa

from lake_pipeline.contract import CREATED_AT, EVENT_UUID

_ROW = "__row"


def history_window(created_at: pl.Series, horizon: float) -> list[tuple[float, float]]:
    """Merged [lo, hi] created_at intervals whose accepted records could make a batch row a duplicate."""
    points = created_at.unique().sort().drop_nulls()
    if points.is_empty():
        return []
    lo, hi = points - horizon, points + horizon
    # A point opens a new interval when its lo is past the previous point's hi.
    group = (lo > hi.shift(1)).fill_null(True).cum_sum()
    spans = pl.DataFrame({"g": group, "lo": lo, "hi": hi}).group_by("g", maintain_order=True).agg(
        pl.col("lo").first(), pl.col("hi").last()
    )
    return list(zip(spans.get_column("lo").to_list(), spans.get_column("hi").to_list()))


def duplicate_mask(batch: pl.DataFrame, history: pl.DataFrame, horizon: float) -> pl.Series:
    """Boolean Series, True for each batch row that is a duplicate.

    ``batch`` has event_uuid and created_at in arrival order. ``history`` has the
    event_uuid and created_at of records accepted by earlier batches (extra rows
    are harmless: only same-uuid rows within the horizon matter).
    """
    n = batch.height
    if n == 0:
        return pl.Series("duplicate", [], dtype=pl.Boolean)
    rows = batch.select(EVENT_UUID, CREATED_AT).with_row_index(_ROW)

    # 1. Against earlier batches: any accepted record with the same uuid within the horizon.
    dup_rows: set[int] = set()
    if history.height:
        hist = history.select(EVENT_UUID, pl.col(CREATED_AT).alias("__hist_at"))
        hit = (
            rows.join(hist, on=EVENT_UUID, how="inner")
            .filter((pl.col(CREATED_AT) - pl.col("__hist_at")).abs() <= horizon)
            .get_column(_ROW)
            .unique()
        )
        dup_rows.update(hit.to_list())

    # 2. Within the batch: only uuids seen more than once need a look.
    candidates = rows.filter(~pl.col(_ROW).is_in(list(dup_rows)) if dup_rows else pl.lit(True))
    repeated = candidates.filter(pl.col(EVENT_UUID).is_duplicated())
    if repeated.height:
        first_at = pl.col(CREATED_AT).first().over(EVENT_UUID)
        spread = repeated.with_columns(
            ((pl.col(CREATED_AT) - first_at).abs() <= horizon).all().over(EVENT_UUID).alias("__simple"),
            (pl.col(_ROW) != pl.col(_ROW).first().over(EVENT_UUID)).alias("__later"),
        )
        # Common case: every copy is within the horizon of the first one -> drop all but the first.
        dup_rows.update(spread.filter(pl.col("__simple") & pl.col("__later")).get_column(_ROW).to_list())
        # Rare case: copies spread wider than the horizon -> decide greedily in arrival order.
        complex_rows = spread.filter(~pl.col("__simple"))
        for _, group in complex_rows.group_by(EVENT_UUID, maintain_order=True):
            dup_rows.update(_greedy(group.get_column(_ROW), group.get_column(CREATED_AT), horizon))

    mask = pl.Series("duplicate", [False] * n, dtype=pl.Boolean)
    if dup_rows:
        mask = mask.scatter(sorted(dup_rows), True)
    return mask


def _greedy(row_ids: pl.Series, created: pl.Series, horizon: float) -> Iterable[int]:
    accepted: list[float] = []
    for row, at in sorted(zip(row_ids.to_list(), created.to_list())):
        if any(abs(at - prev) <= horizon for prev in accepted):
            yield row
        else:
            accepted.append(at)


# --- Buckets: the seen-keys index's cells and the Ray engine's shards ---------------------
# A bucket is a function of the event_uuid's UTF-8 bytes alone, the same on every machine
# and in every version (unlike Polars' or DuckDB's hash(), which may change between
# releases): a polynomial hash mod 2^64 of the bytes, mixed by splitmix64's finalizer.
_P = np.uint64(0x100000001B3)


def uuid_hash(uuids: pl.Series, seed: int = 0) -> np.ndarray:
    """A stable 64-bit hash of each (non-null, non-empty) event_uuid, as uint64; another
    ``seed`` gives an independent one (the index keeps two: a 128-bit fingerprint). The mart's
    users state keys its user ids with it too (marts/users.py: ``user_key``).

    Vectorised per distinct byte length (event_uuids are mostly one length): the bytes of
    the strings of length L form an (n, L) matrix, hashed column by column.
    """
    arr = uuids.cast(pl.Binary).to_arrow()
    arr = arr.cast(pa.large_binary()) if not pa.types.is_large_binary(arr.type) else arr
    arr = pa.concat_arrays([arr]) if arr.offset else arr  # offsets from 0
    n = len(arr)
    out = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    lengths = np.diff(offsets)
    if (lengths == 0).any():
        raise ValueError("event_uuid must be non-empty to be bucketed")
    with np.errstate(over="ignore"):
        for length in np.unique(lengths).tolist():
            if length == lengths[0] and (lengths == length).all():  # the usual case: one length
                rows, block = slice(None), data[offsets[0] : offsets[-1]].reshape(n, length)
            else:
                rows = np.flatnonzero(lengths == length)
                block = data[offsets[rows][:, None] + np.arange(length)]
            # Little-endian 8-byte words of each string, zero-padded: a few columns, not one per byte.
            width = -(-length // 8) * 8
            padded = np.zeros((block.shape[0], width), dtype=np.uint8)
            padded[:, :length] = block
            words = padded.view("<u8")
            h = np.full(block.shape[0], _mix(np.array([length ^ seed], dtype=np.uint64))[0], dtype=np.uint64) \
                if seed else np.full(block.shape[0], np.uint64(length), dtype=np.uint64)
            for column in range(words.shape[1]):
                h = _mix(h * _P + words[:, column])
            out[rows] = h
    return out


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (wrapping uint64 arithmetic)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ordered_key(hashes: np.ndarray) -> np.ndarray:
    """The hashes as int64 in the same order as the unsigned values (the sign bit flipped):
    Delta has no unsigned type, and sorting by this key keeps each bucket's rows together."""
    return (hashes ^ np.uint64(1 << 63)).view(np.int64)


def bucket_of_hash(hashes: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket b holds the hashes in [b * w, (b + 1) * w) for w = ceil(2^64 / buckets): ranges
    of the hash, so a file sorted by :func:`ordered_key` holds each bucket contiguously."""
    if buckets == 1:
        return np.zeros(len(hashes), dtype=np.int32)
    width = np.uint64(-(-(1 << 64) // buckets))
    return (hashes // width).astype(np.int32)


def bucket_of(uuids: pl.Series, buckets: int) -> pl.Series:
    """The bucket (0 .. buckets-1) of each event_uuid, as Int32 (see :func:`bucket_of_hash`)."""
    return pl.Series("bucket", bucket_of_hash(uuid_hash(uuids), buckets))
