"""The ingest ledger: which raw objects the lake holds, and batch plans.

Exactly-once does not depend on the Dagster cursor. Before a batch touches a
table it appends a *plan* (batch id + object keys) to ``_ingest_plans``. The
batch then appends to ``events`` and ``quarantine`` and finally to
``_ingest_ledger``, each commit tagged with a Delta transaction id equal to the
batch id, so a retried batch never writes a table twice. A plan without ledger
rows is a batch that crashed; the next ingest finishes it first, with the same
batch id and the same objects.

Concurrent writers (two ``lake ingest`` processes, on S3 or local) stay safe because
planning is serialized through the plans table (:func:`claim_plan`): every plan commit
carries a Delta transaction of one application id, so two writers planning at once
conflict and the loser looks again; and a writer only plans a new batch when every
earlier plan is finished, so batches reach the lake in batch-id order and each batch's
dedupe sees every earlier batch. Running an unfinished plan that another writer still
has in flight is harmless: each table's commit is idempotent per batch id
(:meth:`Lake.append`), and both writers compute the same batch.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pyarrow as pa

from deltalake import DeltaTable, Transaction

from lake_pipeline.contract import BATCH_ID, LEDGER_SCHEMA, PLANS_SCHEMA
from lake_pipeline.tables.lake import INGEST_APP_ID, MAX_COMMIT_ATTEMPTS, CommitConflict, Lake
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.settings import (
    DEDUPE_INDEX_TABLE,
    EVENTS_TABLE,
    HOURLY_FEED_TABLE,
    LEDGER_TABLE,
    PLANS_TABLE,
    QUARANTINE_TABLE,
)

# Delta "txn" application id of plan commits: two writers planning at once conflict.
PLANS_APP_ID = "lake_pipeline.plans"


@dataclass(frozen=True)
class Plan:
    batch_id: int
    source_keys: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim_plan`."""

    plan: Plan | None = None  # the new batch this writer now owns (None: nothing left to claim)
    unfinished: tuple[Plan, ...] = ()  # batches to finish first (crashed, or in flight elsewhere)


def processed_keys(lake: Lake, candidates: Iterable[str] | None = None, *,
                   snapshot: DeltaTable | None = None) -> set[str]:
    """Keys already recorded in the ledger (optionally only among ``candidates``); ``snapshot``:
    that version of the ledger (default: the current one)."""
    scan = lake.scan(LEDGER_TABLE, snapshot=snapshot)
    if scan is None:
        return set()
    if candidates is not None:
        wanted = list(candidates)
        if not wanted:
            return set()
        scan = scan.filter(pl.col("source_key").is_in(wanted))
    return set(scan.select("source_key").collect().get_column("source_key").to_list())


def committed_batches(lake: Lake, *, snapshot: DeltaTable | None = None) -> set[int]:
    scan = lake.scan(LEDGER_TABLE, snapshot=snapshot)
    if scan is None:
        return set()
    return set(scan.select(BATCH_ID).unique().collect().get_column(BATCH_ID).to_list())


def all_plans(lake: Lake) -> list[Plan]:
    return _plans(lake, lake.table(PLANS_TABLE))


def _plans(lake: Lake, snapshot: DeltaTable | None) -> list[Plan]:
    """The plans of ``snapshot`` of the plans table (None: the table did not exist)."""
    if snapshot is None:
        return []
    df = lake.scan(PLANS_TABLE, snapshot=snapshot).select(BATCH_ID, "source_keys").collect().sort(BATCH_ID)
    return [Plan(int(b), tuple(k)) for b, k in df.iter_rows()]


def _unfinished(plans: list[Plan], done: set[int]) -> list[Plan]:
    seen: set[int] = set()
    out = []
    for plan in plans:
        if plan.batch_id not in done and plan.batch_id not in seen:
            seen.add(plan.batch_id)
            out.append(plan)
    return out


def unfinished_plans(lake: Lake) -> list[Plan]:
    """Plans whose batch never reached the ledger (crashed runs), oldest first."""
    done = committed_batches(lake)
    return _unfinished(all_plans(lake), done)


def next_batch_id(lake: Lake, plans: DeltaTable | None = None) -> int:
    """A batch id never used before: above every plan and every id any table has committed
    (Delta transaction versions survive a rebuild's deletes, so ids are never reused).

    ``plans``: a snapshot of the plans table. Every batch is planned before it writes a table
    (:func:`claim_plan`), so when the plans table records a plan txn, that is the highest id
    used and the other tables are not opened (five opens, 40 ms a batch at 9M events a day);
    they are asked only in a lake whose batches predate the plans table."""
    plans = plans if plans is not None else lake.table(PLANS_TABLE)
    used = [p.batch_id for p in _plans(lake, plans)]
    recorded = None if plans is None else plans.transaction_version(PLANS_APP_ID)
    if recorded is not None:
        return max([recorded, *used]) + 1
    for name in (EVENTS_TABLE, QUARANTINE_TABLE, LEDGER_TABLE, DEDUPE_INDEX_TABLE, HOURLY_FEED_TABLE):
        table = lake.table(name)
        if table is not None:
            used.append(table.transaction_version(INGEST_APP_ID) or 0)
    return max(used, default=0) + 1


def _plan_row(batch_id: int, keys: list[str]) -> pa.Table:
    return pa.table(
        {
            BATCH_ID: pa.array([batch_id], pa.int64()),
            "source_keys": pa.array([keys], pa.list_(pa.string())),
            "claim_id": pa.array([str(uuidlib.uuid4())]),
            "planned_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
        },
        schema=PLANS_SCHEMA,
    )


def _commit_plan(lake: Lake, snapshot: DeltaTable | None, batch_id: int, keys: list[str]) -> Plan:
    """Append one plan on top of ``snapshot``; CommitConflict when another plan was committed since."""
    lake.commit(
        PLANS_TABLE,
        _plan_row(batch_id, keys),
        snapshot=snapshot,
        txn=Transaction(PLANS_APP_ID, batch_id),
        metadata={"batch_id": str(batch_id)},
    )
    return Plan(batch_id, tuple(keys))


def write_plan(lake: Lake, batch_id: int, keys: list[str]) -> Plan:
    """Record a plan for ``batch_id`` (no claim checks; :func:`claim_plan` is what ingest uses)."""
    for _ in range(MAX_COMMIT_ATTEMPTS):
        try:
            return _commit_plan(lake, lake.table(PLANS_TABLE), batch_id, keys)
        except CommitConflict:
            continue  # the table was just created, or another plan landed: commit on the new snapshot
    raise StorageError(f"cannot record a plan in {lake.table_uri(PLANS_TABLE)}: too many concurrent writers")


def claim_plan(lake: Lake, keys: Iterable[str]) -> Claim:
    """Plan the next batch with those of ``keys`` that no batch holds yet, safely with concurrent writers.

    Returns the unfinished plans instead when there are any: they must be finished first,
    so that batches commit in batch-id order. Returns an empty claim when nothing is left.
    """
    wanted = sorted(set(keys))
    for _ in range(MAX_COMMIT_ATTEMPTS):
        snapshot = lake.table(PLANS_TABLE)
        plans = _plans(lake, snapshot)
        # The ledger is read after the plans snapshot: a plan of the snapshot is either
        # finished by now (its keys are in the ledger) or reported unfinished.
        done = lake.table(LEDGER_TABLE)  # one version for the batches and the keys it holds
        unfinished = _unfinished(plans, committed_batches(lake, snapshot=done) if done is not None else set())
        if unfinished:
            return Claim(unfinished=tuple(unfinished))
        remaining = (sorted(set(wanted) - (processed_keys(lake, wanted, snapshot=done) if done is not None else set()))
                     if wanted else [])
        if not remaining:
            return Claim()
        # Batch ids only grow, even when a rebuild dropped plans (txn versions outlive the rows).
        batch_id = next_batch_id(lake, snapshot)
        try:
            return Claim(plan=_commit_plan(lake, snapshot, batch_id, remaining))
        except CommitConflict:
            continue  # another writer planned since our snapshot: look again
    raise StorageError(f"cannot plan a batch in {lake.table_uri(PLANS_TABLE)}: too many concurrent writers")


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
