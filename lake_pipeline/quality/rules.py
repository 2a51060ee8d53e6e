"""Data-quality rules behind the asset checks (no Dagster here: tests call them directly).

Each function returns a :class:`CheckOutcome` with counts a person can act on.
``batch_ids`` scopes a check to the batches of one run; None checks the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from lake_pipeline.contract import BATCH_ID, EVENT_UUID, events_schema
from lake_pipeline.ingest.seen_index import disagreements
from lake_pipeline.tables.lake import Lake
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE
from lake_pipeline.transforms.enrich import derived_columns

if TYPE_CHECKING:
    from deltalake import DeltaTable


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _scoped(
    lake: Lake, table: str, batch_ids: Sequence[int] | None, dates: Sequence[str] | None = None,
    snapshot: DeltaTable | None = None,
) -> pl.LazyFrame | None:
    """The rows of ``batch_ids``; ``dates`` (the batches' event_date partitions) prunes the scan.
    ``snapshot``: that version of ``table`` (default: the current one)."""
    scan = lake.scan(table, snapshot=snapshot)
    if scan is None:
        return None
    if dates is not None and table == EVENTS_TABLE:
        scan = scan.filter(pl.col("event_date").is_in([date.fromisoformat(d) for d in dates]))
    if batch_ids is not None:
        scan = scan.filter(pl.col(BATCH_ID).is_in(list(batch_ids)))
    return scan


def _per_column(rows: int, bad: dict[str, int], problem: str, ok: str, total_key: str, prefix: str) -> CheckOutcome:
    """An outcome from per-column counts of bad values (``bad`` holds only the non-zero ones)."""
    return CheckOutcome(
        not bad,
        problem + ": " + ", ".join(f"{c}={n}" for c, n in bad.items()) if bad else ok,
        {"rows": rows, total_key: sum(bad.values()), **{f"{prefix}_{c}": n for c, n in bad.items()}},
    )


def unique_uuid(lake: Lake) -> CheckOutcome:
    """Every event_uuid appears once in the whole table."""
    scan = lake.scan(EVENTS_TABLE)
    if scan is None:
        return CheckOutcome(True, "events table is empty", {"rows": 0, "duplicated_uuids": 0})
    counts = scan.group_by(EVENT_UUID).agg(pl.len().alias("n"))
    dups = counts.filter(pl.col("n") > 1).sort("n", descending=True).collect()
    rows = scan.select(pl.len()).collect().item()
    sample = dups.head(10).get_column(EVENT_UUID).to_list()
    extra = int((dups.get_column("n") - 1).sum()) if dups.height else 0
    return CheckOutcome(
        dups.height == 0,
        f"{dups.height} event_uuid value(s) appear more than once ({extra} extra rows)"
        if dups.height
        else "every event_uuid is unique",
        {"rows": rows, "duplicated_uuids": dups.height, "extra_rows": extra, "sample": ", ".join(sample)},
    )


def index_agrees(lake: Lake, batch_ids: Sequence[int] | None = None, dates: Sequence[str] | None = None) -> CheckOutcome:
    """The seen-keys index holds exactly the accepted events (of ``batch_ids``; None: every
    date the index retains): no event missing (a redelivery of it would be let through), no
    index row without its event (a new event would be dropped as its duplicate)."""
    # The batches' event_dates prune both scans to their partitions (a batch's cost, not the table's).
    found = disagreements(lake, batch_ids, dates=None if dates is None else [date.fromisoformat(d) for d in dates])
    missing, orphans = found["events_missing"], found["index_orphans"]
    ok = missing == 0 and orphans == 0
    return CheckOutcome(
        ok,
        f"the seen-keys index and events agree on {found['checked']} events" if ok else
        f"the seen-keys index and events disagree: {missing} event(s) missing from the index, {orphans} index "
        "row(s) without an event; delete the lake's _dedupe_index/ and run `lake index build` to rebuild it",
        {"checked": found["checked"], "events_missing": missing, "index_orphans": orphans},
    )


def required_columns(
    lake: Lake, batch_ids: Sequence[int] | None = None, dates: Sequence[str] | None = None
) -> CheckOutcome:
    """No required column of the batches' rows (None: of the table) is null or missing.

    Decided from the files' statistics where they can say (a file of those batches only, null
    counts in its add action or a Parquet column declared required), which reads no data: the
    payload alone took 0.18-0.22 s of 300k events to count its nulls. Otherwise the rows are read.
    """
    snapshot = lake.table(EVENTS_TABLE)  # one version for the files and the rows
    scan = None if snapshot is None else _scoped(lake, EVENTS_TABLE, batch_ids, dates, snapshot)
    if scan is None:
        return CheckOutcome(True, "events table is empty", {"rows": 0})
    present = set(scan.collect_schema().names())
    schema = events_schema(enrich="event_type" in present)  # no-transform lakes have no derived columns
    required = [f.name for f in schema if not f.nullable]
    have = [c for c in required if c in present]
    nulls = _null_counts_from_files(lake, snapshot, have, batch_ids, dates)
    if nulls is None:
        nulls = scan.select(pl.len().alias("__rows"), *[pl.col(c).null_count() for c in have]).collect().row(
            0, named=True)
    rows = nulls.pop("__rows")
    bad = {c: n for c, n in nulls.items() if n}
    bad.update({c: rows for c in required if c not in present})
    return _per_column(rows, bad, "nulls in required columns", "required columns are non-null", "null_values", "nulls")


_FOOTER_READERS = 8


def _null_counts_from_files(
    lake: Lake, snapshot: DeltaTable, columns: list[str], batch_ids: Sequence[int] | None,
    dates: Sequence[str] | None,
) -> dict[str, int] | None:
    """``__rows`` and the nulls of each of ``columns`` in the scope, from the add actions (partition
    values, statistics) and, for a column without null counts there (the payload), the files'
    Parquet footers; None when they can't say: a file holding other batches too (compaction's),
    or a column of a file with neither."""
    files = pl.from_arrow(lake.add_actions(EVENTS_TABLE, snapshot=snapshot))
    if dates is not None and "partition.event_date" in files.columns:
        files = files.filter(pl.col("partition.event_date").is_in([date.fromisoformat(d) for d in dates]))
    if batch_ids is not None and not batch_ids:  # a run that ingested nothing
        files = files.head(0)
    elif batch_ids is not None:
        if "min._batch_id" not in files.columns:
            return None
        low, high = pl.col("min._batch_id"), pl.col("max._batch_id")
        unknown = low.is_null() | high.is_null()
        near = files.filter(unknown | ((high >= min(batch_ids)) & (low <= max(batch_ids))))
        if near.filter(unknown | (low != high)).height:
            return None
        files = near.filter(low.is_in(list(batch_ids)))
    if files["num_records"].null_count():
        return None
    counts: dict[str, int] = {"__rows": int(files["num_records"].sum())}
    for column in columns:
        stat, partition = f"null_count.{column}", f"partition.{column}"
        if partition in files.columns:  # a partition column: its value is in the file's path
            counts[column] = int(files.filter(pl.col(partition).is_null())["num_records"].sum())
            continue
        if stat in files.columns and not files[stat].null_count():
            counts[column] = int(files[stat].sum())
            continue
        with ThreadPoolExecutor(max_workers=_FOOTER_READERS) as pool:  # on S3, a GET or two each
            nulls = list(pool.map(lambda path: _footer_nulls(lake, path, column), files["path"]))
        if None in nulls:
            return None
        counts[column] = sum(nulls)
    return counts


def _footer_nulls(lake: Lake, path: str, column: str) -> int | None:
    """Nulls of ``column`` in one data file by its footer: none if the column is declared required,
    else its row groups' null counts (None: not recorded)."""
    metadata = lake.parquet_file(EVENTS_TABLE, path).metadata
    names = metadata.schema.names
    if column not in names:
        return None
    index = names.index(column)
    if metadata.schema.column(index).max_definition_level == 0:
        return 0
    total = 0
    for group in range(metadata.num_row_groups):
        stats = metadata.row_group(group).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def derived_consistent(
    lake: Lake, batch_ids: Sequence[int] | None = None, dates: Sequence[str] | None = None
) -> CheckOutcome:
    """created_datetime, event_type, event_subtype and event_date match event_name and created_at."""
    scan = _scoped(lake, EVENTS_TABLE, batch_ids, dates)
    if scan is None:
        return CheckOutcome(True, "events table is empty", {"rows": 0})
    present = set(scan.collect_schema().names())
    # In no-transform mode (LAKE_ENRICH=false) only event_date is derived.
    derived = [e for e in derived_columns() if e.meta.output_name() in present]
    names = [e.meta.output_name() for e in derived]
    expected = scan.with_columns([e.name.suffix("__expected") for e in derived])
    mismatch = expected.select(
        pl.len().alias("__rows"),
        *[(~pl.col(c).eq_missing(pl.col(f"{c}__expected"))).sum().alias(c) for c in names],
    ).collect().row(0, named=True)
    rows = mismatch.pop("__rows")
    bad = {c: n for c, n in mismatch.items() if n}
    return _per_column(
        rows, bad, "derived columns disagree with event_name/created_at",
        "derived columns match event_name and created_at", "mismatched_values", "mismatch",
    )


def conservation(
    lake: Lake, batch_ids: Sequence[int] | None = None, dates: Sequence[str] | None = None
) -> CheckOutcome:
    """records read = inserted + duplicates + quarantined, and the tables hold what the ledger says."""
    ledger = _scoped(lake, LEDGER_TABLE, batch_ids)
    if ledger is None:
        return CheckOutcome(True, "no batch in the ledger yet", {"batches": 0})
    per_batch = (
        ledger.group_by(BATCH_ID)
        .agg(pl.col("records", "inserted", "duplicates", "quarantined").sum())
        .collect()
    )
    ids = per_batch.get_column(BATCH_ID).to_list()

    def table_counts(table: str) -> dict[int, int]:
        scan = _scoped(lake, table, ids, dates)
        if scan is None or not ids:
            return {}
        df = scan.group_by(BATCH_ID).agg(pl.len()).collect()
        return dict(df.iter_rows())

    in_events = table_counts(EVENTS_TABLE)
    in_quarantine = table_counts(QUARANTINE_TABLE)
    problems = []
    for b, records, inserted, dups, quarantined in per_batch.iter_rows():
        if records != inserted + dups + quarantined:
            problems.append(f"batch {b}: {records} read != {inserted}+{dups}+{quarantined}")
        if in_events.get(b, 0) != inserted:
            problems.append(f"batch {b}: events holds {in_events.get(b, 0)} rows, ledger says {inserted}")
        if in_quarantine.get(b, 0) != quarantined:
            problems.append(f"batch {b}: quarantine holds {in_quarantine.get(b, 0)} rows, ledger says {quarantined}")
    totals = per_batch.select(pl.col("records", "inserted", "duplicates", "quarantined").sum()).row(0, named=True)
    return CheckOutcome(
        not problems,
        "; ".join(problems[:5]) if problems else "records read = inserted + duplicates + quarantined",
        {"batches": len(ids), **{k: int(v or 0) for k, v in totals.items()}, "problems": len(problems)},
    )
