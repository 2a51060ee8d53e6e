"""The ingest ledger: which raw objects the lake holds, and batch plans.

Exactly-once does not depend on the Dagster cursor. Before a batch touches a
table it appends a *plan* (batch id + object keys) to ``_ingest_plans``. The
batch then appends to ``events`` and ``quarantine`` and finally to
``_ingest_ledger``, each commit tagged with a Delta transaction id equal to the
batch id, so a retried batch never writes a table twice. A plan without ledger
rows is a batch that crashed; the next ingest finishes it first, with the same
batch id and the same objects.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import BATCH_ID, LEDGER_SCHEMA, PLANS_SCHEMA
from lake_pipeline.lake.delta import Lake
from lake_pipeline.settings import LEDGER_TABLE, PLANS_TABLE


@dataclass(frozen=True)
class Plan:
    batch_id: int
    source_keys: tuple[str, ...]


def processed_keys(lake: Lake, candidates: Iterable[str] | None = None) -> set[str]:
    """Keys already recorded in the ledger (optionally only among ``candidates``)."""
    scan = lake.scan(LEDGER_TABLE)
    if scan is None:
        return set()
    if candidates is not None:
        wanted = list(candidates)
        if not wanted:
            return set()
        scan = scan.filter(pl.col("source_key").is_in(wanted))
    return set(scan.select("source_key").collect().get_column("source_key").to_list())


def committed_batches(lake: Lake) -> set[int]:
    scan = lake.scan(LEDGER_TABLE)
    if scan is None:
        return set()
    return set(scan.select(BATCH_ID).unique().collect().get_column(BATCH_ID).to_list())


def all_plans(lake: Lake) -> list[Plan]:
    scan = lake.scan(PLANS_TABLE)
    if scan is None:
        return []
    df = scan.select(BATCH_ID, "source_keys").collect().sort(BATCH_ID)
    return [Plan(int(b), tuple(k)) for b, k in df.iter_rows()]


def unfinished_plans(lake: Lake) -> list[Plan]:
    """Plans whose batch never reached the ledger (crashed runs), oldest first."""
    done = committed_batches(lake)
    seen: set[int] = set()
    out = []
    for plan in all_plans(lake):
        if plan.batch_id not in done and plan.batch_id not in seen:
            seen.add(plan.batch_id)
            out.append(plan)
    return out


def next_batch_id(lake: Lake) -> int:
    plans = all_plans(lake)
    return max((p.batch_id for p in plans), default=0) + 1


def write_plan(lake: Lake, batch_id: int, keys: list[str]) -> Plan:
    table = pa.table(
        {
            BATCH_ID: pa.array([batch_id], pa.int64()),
            "source_keys": pa.array([keys], pa.list_(pa.string())),
            "claim_id": pa.array([str(uuidlib.uuid4())]),
            "planned_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
        },
        schema=PLANS_SCHEMA,
    )
    lake.append(PLANS_TABLE, table, metadata={"batch_id": str(batch_id)})
    return Plan(batch_id, tuple(keys))


def write_ledger(lake: Lake, batch_id: int, rows: pl.DataFrame, run_id: str | None) -> bool:
    """Append the batch's per-object rows (and batch totals) in one idempotent commit."""
    totals = {
        "batch_records": int(rows["records"].sum()),
        "batch_inserted": int(rows["inserted"].sum()),
        "batch_duplicates": int(rows["duplicates"].sum()),
        "batch_quarantined": int(rows["quarantined"].sum()),
    }
    frame = rows.with_columns(
        pl.lit(batch_id, pl.Int64).alias(BATCH_ID),
        *[pl.lit(v, pl.Int64).alias(k) for k, v in totals.items()],
        pl.lit(run_id, pl.String).alias("run_id"),
        pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("committed_at"),
    ).select(LEDGER_SCHEMA.names)
    return lake.append(LEDGER_TABLE, frame.to_arrow().cast(LEDGER_SCHEMA), batch_id=batch_id)


def ledger_frame(lake: Lake) -> pl.DataFrame | None:
    scan = lake.scan(LEDGER_TABLE)
    return None if scan is None else scan.collect()
