"""The lake's tables as comparable rows (helpers, not tests)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE

# Columns that differ between two correct runs of the same input: when, and by which run.
RUN_COLUMNS = ("quarantined_at", "committed_at", "run_id")
TABLES = (EVENTS_TABLE, QUARANTINE_TABLE, LEDGER_TABLE, DEDUPE_INDEX_TABLE)


def table_rows(lake_dir: Path, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple]]:
    """Every row of each table (absent table: no rows), all columns but :data:`RUN_COLUMNS`,
    sorted on every column: equal for two lakes that hold the same data, however it was written."""
    out = {}
    for name in tables:
        path = lake_dir / name
        if not DeltaTable.is_deltatable(str(path)):
            out[name] = []
            continue
        frame = pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table())
        frame = frame.select(sorted(c for c in frame.columns if c not in RUN_COLUMNS))
        out[name] = frame.sort(frame.columns, nulls_last=True).rows()
    return out
