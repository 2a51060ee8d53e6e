"""Parsed records → curated rows (pure Polars; no I/O, no Dagster)."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import (
    BATCH_ID,
    CREATED_AT,
    EVENT_NAME,
    EVENT_UUID,
    EVENTS_SCHEMA,
    ORDINAL,
    QUARANTINE_SCHEMA,
    SOURCE_KEY,
)
from lake_pipeline.transforms.parse import ParsedRecords

# created_datetime: ISO 8601 UTC, fixed width (27 chars), microseconds, truncated.
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"


def records_frame(parsed: ParsedRecords) -> pl.DataFrame:
    """The valid records as a frame in arrival order (key order, then position)."""
    return pl.DataFrame(
        {
            EVENT_UUID: pl.Series(parsed.uuid, dtype=pl.String),
            EVENT_NAME: pl.Series(parsed.name, dtype=pl.String),
            CREATED_AT: pl.Series(parsed.created_at, dtype=pl.Float64, strict=False),
            "payload": pl.Series(parsed.payload, dtype=pl.String),
            SOURCE_KEY: pl.Series(parsed.source_key, dtype=pl.String),
            ORDINAL: pl.Series(parsed.ordinal, dtype=pl.Int64),
        }
    )


def quarantine_frame(parsed: ParsedRecords, batch_id: int, now: pl.Expr | object) -> pa.Table:
    """Quarantined records as an Arrow table in the contract's quarantine schema."""
    n = len(parsed.q_reason)
    return pa.table(
        {
            "raw_record": pa.array(parsed.q_raw, pa.string()),
            "reason": pa.array(parsed.q_reason, pa.string()),
            "source_key": pa.array(parsed.q_source_key, pa.string()),
            "quarantined_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            ORDINAL: pa.array(parsed.q_ordinal, pa.int64()),
            BATCH_ID: pa.array([batch_id] * n, pa.int64()),
        },
        schema=QUARANTINE_SCHEMA,
    )


def derived_columns() -> list[pl.Expr]:
    """Derived columns, always computed from event_name and created_at."""
    c = pl.col(CREATED_AT)
    seconds = c.floor()
    micros = ((c - seconds) * 1_000_000).floor()
    ts = (seconds.cast(pl.Int64) * 1_000_000 + micros.cast(pl.Int64)).cast(pl.Datetime("us", "UTC"))
    parts = pl.col(EVENT_NAME).str.split_exact(":", 2)
    subtype = parts.struct.field("field_1")
    return [
        ts.dt.strftime(DATETIME_FORMAT).alias("created_datetime"),
        parts.struct.field("field_0").alias("event_type"),
        pl.when(subtype == "").then(None).otherwise(subtype).alias("event_subtype"),
        ts.dt.date().alias("event_date"),
    ]


def enrich(frame: pl.DataFrame, batch_id: int) -> pl.DataFrame:
    """Add the derived and lineage columns and order columns as the events schema."""
    return frame.with_columns(*derived_columns(), pl.lit(batch_id, pl.Int64).alias(BATCH_ID)).select(
        EVENTS_SCHEMA.names
    )


def to_events_arrow(frame: pl.DataFrame) -> pa.Table:
    return frame.to_arrow().cast(EVENTS_SCHEMA)
