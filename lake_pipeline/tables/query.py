"""DuckDB over the lake's Delta tables (through Arrow; no DuckDB extensions needed)."""

from __future__ import annotations

import duckdb

from lake_pipeline.tables.lake import Lake
from lake_pipeline.settings import EVENTS_TABLE, HOURLY_COUNTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE, Settings

VIEWS = {
    "events": EVENTS_TABLE,
    "quarantine": QUARANTINE_TABLE,
    "ingest_ledger": LEDGER_TABLE,
    "hourly_event_counts": HOURLY_COUNTS_TABLE,
}


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per existing table."""
    con = duckdb.connect()
    for view, table in VIEWS.items():
        dt = lake.table(table)
        if dt is not None:
            con.register(view, dt.to_pyarrow_dataset())
    return con


def run_query(settings: Settings, sql: str, max_rows: int = 50, fmt: str = "table") -> str:
    con = connect(Lake.from_settings(settings))
    rel = con.sql(sql)
    if rel is None:
        return ""
    if fmt == "csv":
        return rel.limit(max_rows).pl().write_csv()
    if fmt == "json":
        return rel.limit(max_rows).pl().write_json()
    return _table(rel, max_rows)


def _table(rel: duckdb.DuckDBPyRelation, max_rows: int) -> str:
    import polars as pl

    df = rel.limit(max_rows + 1).pl()
    more = df.height > max_rows
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        text = repr(df.head(max_rows))
    return text + (f"\n(first {max_rows} rows shown; use --max-rows)" if more else "")
