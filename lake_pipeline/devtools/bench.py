"""`make bench`: lake ingest against the single-SQL DuckDB floor, on the same files, in one run.

Prints wall seconds, events/s, the ratio to the floor, and peak RSS (the whole
process tree: with LAKE_PARSER=python the parse worker processes count). Landing zones and the 30-day
history lake are generated once and cached under .bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BATCH_HOUR = datetime(2025, 11, 20, 13, tzinfo=UTC)

FLOOR_SQL = """
SET preserve_insertion_order = false;
COPY (
  WITH raw AS (
    SELECT json, filename FROM read_json_objects('{raw}/*/*/*/*/*', format = 'unstructured', filename = true)
  ), parsed AS (
    SELECT json ->> 'event_uuid' AS event_uuid, json ->> 'event_name' AS event_name,
           CAST(json -> 'created_at' AS DOUBLE) AS created_at,
           json_merge_patch(json, '{{"event_uuid":null,"event_name":null,"created_at":null}}') AS payload, filename
    FROM raw
  ), dedup AS (
    SELECT * FROM parsed QUALIFY row_number() OVER (PARTITION BY event_uuid ORDER BY filename) = 1
  )
  SELECT event_uuid, event_name, created_at,
         strftime(make_timestamp(CAST(floor(created_at * 1000000) AS BIGINT)), '%Y-%m-%dT%H:%M:%S.%fZ') AS created_datetime,
         split_part(event_name, ':', 1) AS event_type,
         nullif(split_part(event_name, ':', 2), '') AS event_subtype,
         CAST(make_timestamp(CAST(floor(created_at * 1000000) AS BIGINT)) AS DATE) AS event_date,
         payload
  FROM dedup
) TO '{out}' (FORMAT parquet, PARTITION_BY (event_date, event_type), COMPRESSION zstd, OVERWRITE_OR_IGNORE true);
"""


def _tree_rss(root: int) -> int:
    """Sum of VmRSS (bytes) of ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss[int(entry)] = int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run ``cmd``; return (wall seconds, peak RSS of its process tree, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak, out


def _lake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lake_pipeline.cli.main", *args]


def ensure_landing_zone(path: Path, events: int, start: datetime, seed: int, hours: float = 1.0) -> Path:
    marker = path / ".complete"
    if marker.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(
        _lake_cmd("generate", "--out", str(path), "--events", str(events), "--duplicates", "0.05",
                  "--malformed", "0", "--late", "0.02", "--seed", str(seed), "--start", start.isoformat(),
                  "--hours", str(hours)),
        check=True,
    )
    marker.write_text("ok")
    return path


def ensure_history_lake(cache: Path, days: int, per_day: int) -> Path:
    """A lake holding ``days`` days of history before the benchmark batch."""
    lake = cache / f"history-{days}d-{per_day}"
    if (lake / ".complete").exists():
        return lake
    raw = cache / f"history-raw-{days}d-{per_day}"
    shutil.rmtree(raw, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    first = BATCH_HOUR - timedelta(days=days)
    subprocess.run(
        _lake_cmd("generate", "--out", str(raw), "--events", str(days * per_day), "--malformed", "0",
                  "--seed", "99", "--start", first.isoformat(), "--hours", str(days * 24), "--object-seconds", "3600"),
        check=True,
    )
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(_lake_cmd("ingest", "--raw", str(raw), "--lake", str(lake), "--quiet"), check=True,
                       env={**os.environ, "DAGSTER_HOME": home})
    (lake / ".complete").write_text("ok")
    return lake


def measure_floor(raw: Path, work: Path) -> tuple[float, int]:
    out = work / "floor_out"
    shutil.rmtree(out, ignore_errors=True)
    script = f"import duckdb; duckdb.connect().execute({FLOOR_SQL.format(raw=raw, out=out)!r})"
    seconds, peak, _ = run_measured([sys.executable, "-c", script])
    return seconds, peak


def measure_ingest(raw: Path, lake: Path, home: Path) -> tuple[float, int, str]:
    """One `lake ingest` process, against an existing Dagster instance (as a user has)."""
    return run_measured(_lake_cmd("ingest", "--raw", str(raw), "--lake", str(lake), "--quiet"),
                        env={"DAGSTER_HOME": str(home)})


def ensure_instance(home: Path) -> Path:
    from lake_pipeline.ops.instance import ensure_dagster_home

    ensure_dagster_home(home)
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get()"], check=True,
                   env={**os.environ, "DAGSTER_HOME": str(home)})
    return home


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--history-per-day", type=int, default=100_000)
    parser.add_argument("--cache", default=".bench")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the results here as JSON.")
    args = parser.parse_args(argv)

    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    raw = ensure_landing_zone(cache / f"raw-{args.events}", args.events, BATCH_HOUR, seed=5)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        floor_s, floor_rss = measure_floor(raw, work)
        rows.append({"run": "DuckDB single-SQL floor", "seconds": floor_s, "rss": floor_rss})
        home = ensure_instance(cache / "dagster_home")
        s, rss, out = measure_ingest(raw, work / "lake-empty", home)
        rows.append({"run": "lake ingest, empty lake", "seconds": s, "rss": rss, "summary": out.strip().splitlines()[-1]})
        if not args.skip_history:
            hist = ensure_history_lake(cache, args.history_days, args.history_per_day)
            lake = work / "lake-history"
            shutil.copytree(hist, lake)
            s, rss, out = measure_ingest(raw, lake, home)
            rows.append({"run": f"lake ingest, {args.history_days} days of history", "seconds": s, "rss": rss,
                         "summary": out.strip().splitlines()[-1]})

    events = args.events
    print(f"\n{events:,} events ({raw}), {os.cpu_count()} cores\n")
    print(f"{'run':<36} {'seconds':>8} {'events/s':>10} {'x floor':>8} {'peak RSS':>10}")
    for r in rows:
        print(f"{r['run']:<36} {r['seconds']:>8.2f} {events / r['seconds']:>10,.0f} {r['seconds'] / floor_s:>8.2f} "
              f"{r['rss'] / 2**20:>8.0f} MB")
    if len(rows) == 3:
        print(f"\nhistory / empty-lake time: {rows[2]['seconds'] / rows[1]['seconds']:.2f}")
    for r in rows[1:]:
        print(f"{r['run']}: {r['summary']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"events": events, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
