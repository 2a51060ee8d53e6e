"""Deduplication on event_uuid within a horizon (pure Polars; no I/O, no Dagster).

A record is a duplicate when a record with the same event_uuid was already
accepted (earlier in this batch, or in an earlier batch = ``history``) with a
created_at within ``horizon`` seconds of its own. The first arrival wins; the
frame must be in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

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
