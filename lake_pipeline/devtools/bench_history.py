"""`make bench-history`: one one-minute batch into lakes with days of history, and the mart after it.

For each size (events per day, default 1M, 4M, 9M and 16M) a lake holding ``--days`` days of
history (ending at the batch's minute) is written directly (not through the pipeline): synthetic
rows in the events schema (``transforms/enrich.enrich`` on vectorised Polars columns, payloads
``{"user_id": ...}`` from a pool of 50k users), appended through :class:`Lake` one chunk per
commit. If the seen-keys index of issue 14 exists (``lake_pipeline.ingest.seen_index.build_index``),
it is built after the events. The last ``--recent-minutes`` (60 by default) are not written in
bulk: after the mart's rebuild they run as one-minute batches through the pipeline, the mart
updated after each and the lake compacted at minute 40 as the compaction schedule does
(:func:`feed_recent`), so that the batch under test finds the small files and late rows a lake
in production has, not one compacted file per date.

Then the same batch (``devtools/synthetic.generate``: 17k events in one minute of Firehose
objects, 2% of them late by 1 hour to 3 days, plus a few hundred redeliveries of events that
every history holds) is ingested with ``engines.run.ingest_keys`` into an empty lake and into each
history lake. Printed per lake: the batch's seconds (wall, and CPU of this process), the ratio to
the empty lake, the same for `lake ingest` of the batch into a copy of the lake (a new process, as
a user runs it: start-up, the Dagster run, its checks and the mart's update; ``--process-runs``
times, 3 by default, each into a fresh copy: the median and the range are printed, and the
ratio is the median's; ``--no-process`` skips it; each history run alternates with a run into
an empty lake, the order swapped every other pair, and "/ empty beside" is the median of those
pairs' ratios, which the machine's drift over the minutes between lakes does not move), the rows the dedupe read (``BatchResult.dedupe_rows_read`` where it exists), and a
verification that every redelivery was dropped and nothing else. Then the mart: its full rebuild
before the batch, its update after it (``marts.hourly.update_hourly_counts``), their ratio, and
the mart's own check (``counts_match_events``) on the hours the update touched.

Lakes are written under ``--work`` (default .bench/history) and each history lake is deleted
after it was measured (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from lake_pipeline.contract import ORDINAL, PARTITION_COLUMNS, SOURCE_KEY
from lake_pipeline.devtools.bench import copy_lake, measure_ingest
from lake_pipeline.devtools.synthetic import event_names, generate
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.seen_index import compact_index
from lake_pipeline.maintenance.compaction import SCHEDULE_MINUTE, compact, compact_bookkeeping
from lake_pipeline.marts import hourly as marts
from lake_pipeline.marts import users
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, load_settings
from lake_pipeline.storage.objects import LocalStorage
from lake_pipeline.tables.lake import Lake
from lake_pipeline.transforms.enrich import enrich, to_events_arrow

# The batch's minute: the start of the current hour, so that the seen-keys index's retention
# (LAKE_DEDUPE_RETENTION_DAYS, counted back from today) holds the whole history.
BATCH_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
USERS = 50_000
CHUNK_ROWS = 4_000_000
REDELIVERIES = 300
SEED = 2025


def _uuids(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` random version-4 UUIDs in canonical text, vectorised."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = pl.Series(np.frombuffer(raw.tobytes().hex().encode(), dtype="S32")).cast(pl.String)
    parts = [hexed.str.slice(a, b - a) for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))]
    return pl.DataFrame({str(i): p for i, p in enumerate(parts)}).select(
        pl.concat_str(pl.all(), separator="-")).to_series()


def history_rows(rng: np.random.Generator, n: int, start: float, end: float, source: str) -> pl.DataFrame:
    """``n`` events created uniformly in [start, end), as the events table holds them (batch id 0)."""
    names = np.array(event_names())
    created = np.round(rng.uniform(start, end, n), 6)
    users = rng.integers(0, USERS, n)
    frame = pl.DataFrame({
        "event_uuid": _uuids(rng, n),
        "event_name": names[rng.integers(0, len(names), n)],
        "created_at": created,
        "user": users,
        SOURCE_KEY: pl.repeat(source, n, eager=True),
        ORDINAL: np.arange(n, dtype=np.int64),
    }).with_columns(
        pl.concat_str(pl.lit('{"user_id":"u'), pl.col("user").cast(pl.String).str.zfill(6), pl.lit('"}'))
        .alias("payload")
    )
    return enrich(frame.drop("user"), 0)


def redeliveries(rng: np.random.Generator, start: float, end: float) -> pl.DataFrame:
    """The events every history holds and the batch delivers again (created in the history's window)."""
    return history_rows(rng, REDELIVERIES, start, end, "history/redelivered")


def _records(rows: pl.DataFrame) -> list[bytes]:
    """Raw records (as a producer sent them) of events rows whose payload is {"user_id": ...}."""
    out = []
    for uuid, name, created, payload in rows.select("event_uuid", "event_name", "created_at", "payload").iter_rows():
        out.append(orjson.dumps({"event_uuid": uuid, "event_name": name, "created_at": created,
                                 **orjson.loads(payload)}))
    return out


def write_history(lake: Lake, per_day: int, days: int, redelivered: pl.DataFrame, recent_minutes: int = 0) -> float:
    """``days`` days of ``per_day`` events before BATCH_START (holding ``redelivered``), less the
    last ``recent_minutes`` (:func:`feed_recent` runs those as batches); returns seconds."""
    started = time.perf_counter()
    rng = np.random.default_rng(SEED + per_day)
    start = BATCH_START.timestamp() - days * 86400
    end = BATCH_START.timestamp() - recent_minutes * 60
    total = round(per_day * (end - start) / 86400) - redelivered.height
    chunk = 0
    for lo in range(0, total, CHUNK_ROWS):
        n = min(CHUNK_ROWS, total - lo)
        # Each chunk covers its own slice of the window, as batches arriving in time order would.
        a = start + (end - start) * lo / total
        b = start + (end - start) * (lo + n) / total
        rows = history_rows(rng, n, a, b, f"history/chunk-{chunk}")
        if chunk == 0:
            rows = pl.concat([rows, redelivered])
        lake.append(EVENTS_TABLE, to_events_arrow(rows), partition_by=PARTITION_COLUMNS)
        chunk += 1
    _build_seen_index(lake)
    return time.perf_counter() - started


def _build_seen_index(lake: Lake) -> None:
    try:
        from lake_pipeline.ingest.seen_index import build_index  # issue 14 (the lead's); absent before it lands
    except ImportError:
        return
    try:
        build_index(lake, load_settings(lake_uri=lake.uri), progress=None, today=BATCH_START.date())
    except TypeError:  # a build_index without ``today``
        build_index(lake, load_settings(lake_uri=lake.uri), progress=None)


def feed_recent(lake_dir: Path, raw: Path, per_day: int, minutes: int) -> tuple[float, int, int]:
    """The last ``minutes`` before BATCH_START as production leaves them: one one-minute batch at
    a time through ``ingest_keys`` (``per_day`` / 1440 events each, 2% late), the mart updated
    after each as the ingest job does, and events, the seen-keys index, the mart's users state
    and the bookkeeping tables compacted at minute 40 of the hour as ``events_compaction_schedule`` does. So the batch under test finds the
    files of the last 20 minutes one per batch, and closed dates with the late rows of those
    batches beside their key files. Returns the seconds it took, the batches it ran and the
    compactions."""
    started = time.perf_counter()
    shutil.rmtree(raw, ignore_errors=True)
    first = BATCH_START - timedelta(minutes=minutes)
    made = generate(LocalStorage(str(raw)), per_day * minutes // 1440, start=first, duplicates=0.0, malformed=0.0,
                    late=0.02, seed=SEED + 1 + per_day, object_seconds=60, span_seconds=minutes * 60)
    settings = load_settings(raw_uri=str(raw), lake_uri=str(lake_dir))
    lake = Lake(str(lake_dir))
    batches = compactions = 0
    for i, key in enumerate(sorted(made.keys)):
        batches += len(ingest_keys(settings, [key]).batches)
        marts.update_hourly_counts(lake)
        at = first + timedelta(minutes=i + 1)
        if at.minute == SCHEDULE_MINUTE:
            compact(lake, settings.compact_target_file_bytes, settings.compact_group_max_bytes)
            compact_index(lake, settings.dedupe_horizon_seconds, now=at)
            users.compact_state(lake, marts.MART_APP_ID, key_file_days=settings.dedupe_retention_days,
                                today=at.date())
            compact_bookkeeping(lake, settings.compact_target_file_bytes)
            compactions += 1
    return time.perf_counter() - started, batches, compactions


def batch_zone(raw: Path, redelivered: pl.DataFrame, events: int) -> list[str]:
    """One minute of Firehose objects: ``events`` new events (2% late by 1 h to 3 days) + the redeliveries."""
    shutil.rmtree(raw, ignore_errors=True)
    res = generate(LocalStorage(str(raw)), events, start=BATCH_START, duplicates=0.0, malformed=0.0, late=0.02,
                   seed=SEED, object_seconds=20, span_seconds=60, redeliver=_records(redelivered))
    return sorted(res.keys)


@dataclass
class Row:
    lake: str
    history_events: int
    batch_seconds: float
    batch_cpu_seconds: float
    dedupe_rows_read: int | None
    inserted: int
    duplicates: int
    expected_inserted: int
    expected_duplicates: int
    redeliveries_once: bool
    mart_rebuild_seconds: float | None = None
    mart_update_seconds: float | None = None
    mart_update_mode: str = ""
    mart_update_cpu_seconds: float | None = None
    mart_update_timings: dict | None = None
    mart_state_rows_read: int = 0
    key_file_rows_read: int | None = None  # of dedupe_rows_read, from closed dates' key files
    mart_check: str = ""
    process_seconds: float | None = None  # `lake ingest` of the batch into a copy of the lake, whole process: the median
    process_range: tuple[float, float] | None = None  # the fastest and slowest of those runs
    # A history lake's runs alternate with runs into an empty lake: their median, and the median
    # of each pair's ratio (history / the empty run beside it), which the machine's drift moves least.
    paired_empty_seconds: float | None = None
    paired_ratio: float | None = None

    @property
    def verified(self) -> bool:
        return (self.inserted, self.duplicates) == (self.expected_inserted, self.expected_duplicates) and \
            self.redeliveries_once


def _ingest(lake_dir: Path, raw: Path, keys: list[str]):
    settings = load_settings(raw_uri=str(raw), lake_uri=str(lake_dir))
    cpu = time.process_time()
    summary = ingest_keys(settings, keys)
    return summary, time.process_time() - cpu


def _ingest_process(lake_dir: Path, raw: Path, home: Path, runs: int = 1) -> list[float]:
    """Wall seconds of each of ``runs`` `lake ingest` processes (start-up, the Dagster run, its
    checks and the mart's update included, as a user runs it) of the batch, each into a fresh
    copy of ``lake_dir``."""
    return [_one_process(lake_dir, raw, home) for _ in range(runs)]


def _one_process(lake_dir: Path, raw: Path, home: Path) -> float:
    copy = lake_dir.with_name(lake_dir.name + "-process")
    shutil.rmtree(copy, ignore_errors=True)
    if lake_dir.exists():
        copy_lake(lake_dir, copy)
    try:
        seconds, _, _ = measure_ingest(raw, copy, home)  # make bench's: a failed run exits with its stderr
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    return seconds


def _paired_processes(lake_dir: Path, empty_dir: Path, raw: Path, home: Path, runs: int) -> list[tuple[float, float]]:
    """``runs`` pairs of `lake ingest` (into a copy of ``lake_dir``, into an empty lake), the
    order swapped every other pair, so that each history run has an empty one beside it."""
    pairs = []
    for i in range(runs):
        if i % 2 == 0:
            history = _one_process(lake_dir, raw, home)
            empty = _one_process(empty_dir, raw, home)
        else:
            empty = _one_process(empty_dir, raw, home)
            history = _one_process(lake_dir, raw, home)
        pairs.append((history, empty))
    return pairs


def measure(name: str, lake_dir: Path, raw: Path, keys: list[str], history: int, redelivered: pl.DataFrame,
            batch_events: int, home: Path | None = None, process_runs: int = 1, per_day: int = 0,
            recent_minutes: int = 0) -> Row:
    lake = Lake(str(lake_dir))
    rebuild = None
    if history:
        rebuild = marts.update_hourly_counts(lake).seconds  # the mart from scratch, before the batch
    if history and recent_minutes:
        seconds, batches, compactions = feed_recent(lake_dir, lake_dir.with_name("recent-raw"), per_day,
                                                    recent_minutes)
        print(f"{name}: fed the last {recent_minutes} minute(s) as {batches} one-minute batch(es), the mart updated "
              f"after each, compacted {compactions} time(s) at minute {SCHEDULE_MINUTE}, in {seconds:.1f} s",
              flush=True)
    process = pairs = None
    if home is not None and history:
        pairs = _paired_processes(lake_dir, lake_dir.with_name("lake-empty-beside"), raw, home, process_runs)
        process = [h for h, _ in pairs]
    elif home is not None:
        process = _ingest_process(lake_dir, raw, home, process_runs)
    summary, cpu = _ingest(lake_dir, raw, keys)
    result = summary.batches[-1]
    uuids = redelivered.get_column("event_uuid").to_list()
    once = (lake.scan(EVENTS_TABLE).filter(pl.col("event_uuid").is_in(uuids)).select(pl.len()).collect().item()
            == len(uuids))
    cpu_mart = time.process_time()
    update = marts.update_hourly_counts(lake)
    cpu_mart = time.process_time() - cpu_mart
    check = marts.counts_match_events(lake, update.hours)
    return Row(
        lake=name, history_events=history, batch_seconds=summary.seconds, batch_cpu_seconds=cpu,
        dedupe_rows_read=getattr(result, "dedupe_rows_read", None),
        key_file_rows_read=getattr(result, "dedupe_key_file_rows_read", None),
        inserted=summary.total("inserted"), duplicates=summary.total("duplicates"),
        expected_inserted=batch_events + (0 if history else len(uuids)),
        expected_duplicates=len(uuids) if history else 0, redeliveries_once=once,
        mart_rebuild_seconds=rebuild, mart_update_seconds=update.seconds, mart_update_mode=update.mode,
        mart_update_cpu_seconds=cpu_mart, mart_update_timings=update.timings, mart_state_rows_read=update.state_rows_read,
        mart_check="passed" if check.passed else f"FAILED: {check.description}",
        process_seconds=statistics.median(process) if process else None,
        process_range=(min(process), max(process)) if process else None,
        paired_empty_seconds=statistics.median(e for _, e in pairs) if pairs else None,
        paired_ratio=statistics.median(h / e for h, e in pairs) if pairs else None,
    )


def _events_path(name: str, lake_dir: Path, raw: Path, keys: list[str], history: int, redelivered: pl.DataFrame,
                 batch_events: int) -> Row:
    """The batch into a copy of the history lake without its seen-keys index: dedupe reads the
    events partitions (the path before issue 14, still what a lake without the index does)."""
    copy = lake_dir.with_name(lake_dir.name + "-events-path")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(lake_dir, copy, ignore=shutil.ignore_patterns(DEDUPE_INDEX_TABLE))
    summary, cpu = _ingest(copy, raw, keys)
    result = summary.batches[-1]
    uuids = redelivered.get_column("event_uuid").to_list()
    once = (Lake(str(copy)).scan(EVENTS_TABLE).filter(pl.col("event_uuid").is_in(uuids)).select(pl.len())
            .collect().item() == len(uuids))
    shutil.rmtree(copy, ignore_errors=True)
    return Row(lake=f"{name} ({result.dedupe_source})", history_events=history, batch_seconds=summary.seconds,
               batch_cpu_seconds=cpu, dedupe_rows_read=result.dedupe_rows_read, inserted=summary.total("inserted"),
               duplicates=summary.total("duplicates"), expected_inserted=batch_events,
               expected_duplicates=len(uuids), redeliveries_once=once, mart_check="passed")


def _fmt(v, spec=".2f") -> str:
    return "-" if v is None else format(v, spec)


def _span(r: Row) -> str:
    """The fastest-slowest `lake ingest` of a lake ("-" without one)."""
    return "-" if r.process_range is None else f"{r.process_range[0]:.2f}-{r.process_range[1]:.2f}"


def print_table(rows: list[Row], load: tuple[float, float, float], days: int) -> list[str]:
    empty = rows[0].batch_seconds
    empty_process = rows[0].process_seconds
    lines = [
        f"{days} day(s) of history; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores",
        "| lake | history events | batch s | batch CPU s | / empty | lake ingest s | / empty | dedupe rows read "
        "| of them from key files | inserted (expected) | duplicates (expected) | verified | mart rebuild s | mart update s (mode) "
        "| update CPU s | update / rebuild | state rows read | lake ingest range s | empty beside s | / empty beside |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = (f"{100 * r.mart_update_seconds / r.mart_rebuild_seconds:.1f}%"
                 if r.mart_rebuild_seconds and r.mart_update_seconds is not None else "-")
        lines.append(
            f"| {r.lake} | {r.history_events:,} | {r.batch_seconds:.2f} | {r.batch_cpu_seconds:.2f} | "
            f"{r.batch_seconds / empty:.2f} | {_fmt(r.process_seconds)} | "
            f"{_fmt(r.process_seconds / empty_process if r.process_seconds and empty_process else None)} | "
            f"{_fmt(r.dedupe_rows_read, ',')} | {_fmt(r.key_file_rows_read, ',')} | {r.inserted:,} ({r.expected_inserted:,}) | "
            f"{r.duplicates} ({r.expected_duplicates}) | {'yes' if r.verified else 'NO'} | "
            f"{_fmt(r.mart_rebuild_seconds)} | {_fmt(r.mart_update_seconds)} ({r.mart_update_mode}) | "
            f"{_fmt(r.mart_update_cpu_seconds)} | {ratio} | "
            f"{r.mart_state_rows_read:,} | "
            f"{_span(r)} | {_fmt(r.paired_empty_seconds)} | {_fmt(r.paired_ratio)} |")
    for line in lines:
        print(line, flush=True)
    return lines


def _sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().upper()
        factor = 1_000_000 if part.endswith("M") else 1_000 if part.endswith("K") else 1
        out.append(int(float(part.rstrip("MK")) * factor))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,4M,9M,16M", help="events per day of each history lake (K/M suffixes)")
    parser.add_argument("--days", type=int, default=3, help="days of history in each lake")
    parser.add_argument("--batch-events", type=int, default=17_000)
    parser.add_argument("--recent-minutes", type=int, default=60,
                        help="the last minutes of history fed as one-minute batches (as production leaves them), "
                             "not written in bulk; 0: all in bulk, as before 2026-12-03")
    parser.add_argument("--work", default=".bench/history")
    parser.add_argument("--keep", action="store_true", help="keep the history lakes")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--process-runs", type=int, default=3,
                        help="`lake ingest` processes per lake (each into a fresh copy); the median is compared")
    parser.add_argument("--no-process", action="store_true",
                        help="skip `lake ingest` of the batch (a new process) into a copy of each lake")
    parser.add_argument("--compare-events", action="store_true",
                        help="also run the batch into a copy of each history lake without its seen-keys index "
                             "(dedupe then reads the events partitions, as before issue 14)")
    args = parser.parse_args(argv)
    if args.process_runs < 1:
        parser.error("--process-runs must be at least 1 (--no-process skips `lake ingest`)")
    load = os.getloadavg()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    end = BATCH_START.timestamp()
    redelivered = redeliveries(rng, end - args.days * 86400, end)
    raw = work / "batch-raw"
    keys = batch_zone(raw, redelivered, args.batch_events)
    # Warm-up (imports, first DuckDB/Polars calls) into a throwaway lake, then the empty lake.
    shutil.rmtree(work / "warmup", ignore_errors=True)
    _ingest(work / "warmup", raw, keys)
    shutil.rmtree(work / "warmup", ignore_errors=True)
    home = None
    if not args.no_process:  # one Dagster instance for every `lake ingest`, created by a first one
        home = work / "dagster_home"
        shutil.rmtree(home, ignore_errors=True)
        _ingest_process(work / "warmup", raw, home)
    rows = []
    for name, per_day in [("empty", 0), *((f"{s:,}/day", s) for s in _sizes(args.sizes))]:
        lake_dir = work / f"lake-{per_day}"
        shutil.rmtree(lake_dir, ignore_errors=True)
        if per_day:
            seconds = write_history(Lake(str(lake_dir)), per_day, args.days, redelivered, args.recent_minutes)
            print(f"{name}: wrote {per_day * args.days:,} events of history (and the seen-keys index, where "
                  f"it exists) in {seconds:.1f} s", flush=True)
        if per_day and args.compare_events:
            rows.append(_events_path(name, lake_dir, raw, keys, per_day * args.days, redelivered, args.batch_events))
        rows.append(measure(name, lake_dir, raw, keys, per_day * args.days, redelivered, args.batch_events, home,
                            args.process_runs, per_day, args.recent_minutes))
        r = rows[-1]
        beside = "" if r.paired_ratio is None else f", {r.paired_ratio:.2f}x the empty lake beside it"
        print(f"{name}: batch {r.batch_seconds:.2f} s, lake ingest {_fmt(r.process_seconds)} s{'' if r.process_range is None else f' (median; {_span(r)}{beside})'}, mart rebuild {_fmt(r.mart_rebuild_seconds)} s, "
              f"update {r.mart_update_seconds:.2f} s ({r.mart_update_mode}: {r.mart_update_timings}), "
              f"check {r.mart_check}", flush=True)
        if not args.keep:
            shutil.rmtree(lake_dir, ignore_errors=True)
    lines = print_table(rows, load, args.days)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0 if all(r.verified and r.mart_check == "passed" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
