"""`make bench-ray`: the same landing zone ingested by the local engine and by the Ray engine, in one run.

For each size (default 1M and 10M synthetic events, `lake generate`'s corpus, cached under .bench/),
both engines ingest it into a fresh lake in this process (no Dagster: the engines alone, through
engines/run.ingest_keys, batch after batch as `lake ingest` plans them), and the table prints wall
seconds, CPU seconds (this process and its children: the local engine's parse workers, the Ray
processes `ray.init()` started), events/s, the ray/local ratio and the seconds per stage summed
over the batches. The Ray cluster is started once (LAKE_RAY_ADDRESS unset: a local Ray on this
machine's cores) before the first measurement; its start-up is printed, not counted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from lake_pipeline.devtools.bench import BATCH_HOUR, ensure_landing_zone
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.landing import list_pending, plan_batches
from lake_pipeline.settings import load_settings

STAGES = ("plan", "read_parse", "curate", "write_events", "write_quarantine", "write_ledger")
# Columns that differ between two correct ingests of the same files: when, and by which run.
RUN_COLUMNS = ("quarantined_at", "committed_at", "run_id")


def table_digests(lake: Path) -> dict[str, tuple[int, int]]:
    """(rows, order-independent digest of every row but RUN_COLUMNS) of each table: equal for two lakes
    holding the same rows. Streamed (a sum of row hashes), so a 10M-row table is never held whole."""
    import polars as pl

    from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE

    out = {}
    for name in (EVENTS_TABLE, QUARANTINE_TABLE, LEDGER_TABLE):
        if not (lake / name / "_delta_log").is_dir():
            out[name] = (0, 0)
            continue
        scan = pl.scan_delta(str(lake / name))
        columns = sorted(c for c in scan.collect_schema().names() if c not in RUN_COLUMNS)
        digest = scan.select(pl.len().alias("rows"), pl.struct(columns).hash(seed=7).cast(pl.Decimal(38, 0)).sum().alias("sum"))
        rows, total = digest.collect(engine="streaming").row(0)
        out[name] = (rows, int(total))
    return out


def _cpu_seconds() -> float:
    """CPU seconds of this process and every live descendant: the Ray processes `ray.init()` started
    (GCS, raylet, workers), which run until the end, and any parse worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime + _descendants_cpu_seconds()


def _descendants_cpu_seconds() -> float:
    total, me = 0.0, os.getpid()
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
                times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, ValueError, IndexError):
                pass
    mine, grew = {me}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in mine and p not in mine}
        mine |= more
        grew = bool(more)
    for pid in mine - {me}:
        total += times.get(pid, 0.0)
    return total


def measure(engine: str, raw: Path, lake: Path, objects: int | None = None) -> dict:
    """Ingest the landing zone (its first ``objects`` objects) into a new lake with ``engine``."""
    shutil.rmtree(lake, ignore_errors=True)
    settings = load_settings(raw_uri=str(raw), lake_uri=str(lake), engine=engine)
    pending = list_pending(settings)[:objects]
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes)
    cpu = _cpu_seconds()
    started = time.perf_counter()
    results = []
    for batch in batches:
        results.extend(ingest_keys(settings, [o.key for o in batch], {o.key: o.size for o in batch}).batches)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    stages = {s: sum(r.timings.get(s, 0.0) for r in results) for s in STAGES}
    return {
        "digests": table_digests(lake),
        "engine": engine, "seconds": seconds, "cpu": cpu,
        "records": sum(r.records for r in results), "inserted": sum(r.inserted for r in results),
        "batches": len(results), "tasks": sum(r.tasks for r in results),
        "nodes": max((r.nodes for r in results), default=0), "stages": stages,
    }


def start_ray() -> float:
    from lake_pipeline.engines.ray import connect

    # The bench's Ray lives as long as this process and serves it alone: no auth token left in ~/.ray.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = time.perf_counter()
    connect("")
    return time.perf_counter() - started


def print_table(size: int, rows: list[dict]) -> None:
    """One row per measurement; ``x local``: wall seconds over those of the local run just before it."""
    local = next(r for r in rows if r["engine"] == "local")
    print(f"\n{size:,} events ({local['records']:,} records, {local['batches']} batches)")
    head = f"{'engine':<7}{'wall s':>8}{'cpu s':>8}{'events/s':>10}{'x local':>8}{'tasks':>7}{'nodes':>6}"
    print(head + "".join(f"{s:>17}" for s in STAGES))
    for r in rows:
        local = r if r["engine"] == "local" else local
        ratio = r["seconds"] / local["seconds"] if local["seconds"] else 0.0
        print(f"{r['engine']:<7}{r['seconds']:>8.2f}{r['cpu']:>8.1f}{r['records'] / r['seconds']:>10.0f}{ratio:>8.2f}"
              f"{r['tasks']:>7}{r['nodes']:>6}" + "".join(f"{r['stages'][s]:>17.2f}" for s in STAGES))
    digests = {str(r["digests"]) for r in rows}
    print("tables equal on both engines (rows and a digest of every row of events, quarantine, _ingest_ledger):",
          "yes" if len(digests) == 1 else "NO")
    assert len(digests) == 1, [r["digests"] for r in rows]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--cache", type=Path, default=Path(".bench"))
    parser.add_argument("--repeat", type=int, default=1, help="measure each engine this many times (alternating)")
    parser.add_argument("--repeat-first", type=int, default=3, help="repeats of the first (smallest) size")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"ray start-up (ray.init(), not counted): {start_ray():.1f} s")
    warm = False
    for size in args.events:
        # The 1M corpus is `make bench`'s (same cache entry); bigger ones span one hour per million.
        raw = ensure_landing_zone(args.cache / f"raw-{size}", size, BATCH_HOUR, seed=5, hours=max(1.0, size / 1_000_000))
        work = args.cache / "ray-bench"
        if not warm:  # imports, DuckDB, Ray's worker processes: started once, before any measurement
            for engine in ("local", "ray"):
                measure(engine, raw, work / f"warm-{engine}", objects=4)
            warm = True
        rows = []
        for _ in range(args.repeat_first if size == args.events[0] else args.repeat):
            for engine in ("local", "ray"):
                rows.append(measure(engine, raw, work / f"lake-{engine}"))
        print_table(size, rows)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}; finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
