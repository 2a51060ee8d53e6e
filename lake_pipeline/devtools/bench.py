"""`make bench`: lake ingest against the single-SQL DuckDB floor, on the same files, in one run.

Corpora: ``synthetic`` (our generator's 1M events, 60 gzip objects; also into a lake with 30
days of history) and the production-shaped ones of `corpora.py`: ``realistic`` (1M events of
ordinary application payloads in 10 Firehose objects), ``clean`` (the same newline-delimited),
``dirty`` (that with 1% malformed or invalid lines in every object; the floor can't read it, so
its ratio is to the clean floor) and ``big`` (one 128 MiB object). Prints wall seconds, events/s,
the ratio to the floor measured in the same run, and peak RSS (the whole process tree: with
LAKE_PARSER=python the parse worker processes count), then history/empty and dirty/clean.
``--baseline DIR`` runs `lake ingest` again from another checkout (e.g. a worktree of the
previous commit) on the same files, for a before/after in one run. ``--rounds N`` runs the whole
sequence N times and prints, per run, the median seconds, their range, and the median of the
rounds' own ratios (each round's ingest against the floor of that same round): on a machine
whose speed drifts between minutes, one round's ratio can move by a third. Landing zones and
the 30-day history lake are generated once and cached under .bench/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

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


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, int, str]:
    """Run ``cmd`` (in ``cwd``); return (wall seconds, peak RSS of its process tree, stdout)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
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
    return [sys.executable, "-m", "lake_pipeline.cli", *args]


def ensure_landing_zone(path: Path, events: int, start: datetime, seed: int, hours: float = 1.0,
                        malformed: float = 0.0) -> Path:
    marker = path / ".complete"
    if marker.exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(
        _lake_cmd("generate", "--out", str(path), "--events", str(events), "--duplicates", "0.05",
                  "--malformed", str(malformed), "--late", "0.02", "--seed", str(seed), "--start", start.isoformat(),
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


def measure_ingest(raw: Path, lake: Path, home: Path, code: str | None = None) -> tuple[float, int, str]:
    """One `lake ingest` process, against an existing Dagster instance (as a user has); ``code``:
    the root of another checkout to run instead of this one (it runs there, so that `python -m`
    finds that checkout's package first, and with it on PYTHONPATH)."""
    env = {"DAGSTER_HOME": str(home), **({"PYTHONPATH": code} if code else {})}
    return run_measured(_lake_cmd("ingest", "--raw", str(raw), "--lake", str(lake), "--quiet"), env=env, cwd=code)


def ensure_instance(home: Path) -> Path:
    from lake_pipeline.ops.instance import ensure_dagster_home

    ensure_dagster_home(home)
    subprocess.run([sys.executable, "-c", "import dagster; dagster.DagsterInstance.get()"], check=True,
                   env={**os.environ, "DAGSTER_HOME": str(home)})
    return home


def ensure_production_corpora(cache: Path, events: int, objects: int) -> dict[str, Path]:
    """The production-shaped corpora (`corpora.py`): ``realistic`` (Firehose framing),
    ``clean`` (the same events newline-delimited), ``dirty`` (that, with 1% malformed or invalid
    lines in every object) and ``big`` (one 128 MiB object)."""
    from lake_pipeline.devtools.corpora import write_big_object, write_realistic
    from lake_pipeline.storage.objects import LocalStorage

    made = {
        "realistic": lambda st: write_realistic(st, events, objects, start=BATCH_HOUR),
        "clean": lambda st: write_realistic(st, events, objects, start=BATCH_HOUR, newline_delimited=True),
        "dirty": lambda st: write_realistic(st, events, objects, start=BATCH_HOUR, newline_delimited=True,
                                            bad_share=0.01),
        "big": lambda st: {"events": write_big_object(st, start=BATCH_HOUR)},
    }
    paths = {}
    for name, make in made.items():
        path = cache / (f"{name}-{events}-{objects}" if name != "big" else "big-128MiB")
        if not (path / ".complete").exists():
            shutil.rmtree(path, ignore_errors=True)
            print(f"generating the {name} corpus in {path} (once)", flush=True)
            counts = make(LocalStorage(str(path)))
            (path / ".complete").write_text(json.dumps(counts))
        paths[name] = path
    return paths


def corpus_events(raw: Path, default: int) -> int:
    marker = raw / ".complete"
    try:
        return json.loads(marker.read_text())["events"]
    except (OSError, ValueError, KeyError, TypeError):
        return default


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def copy_lake(source: Path, target: Path) -> None:
    """A copy of the lake ``source`` at ``target`` for one measured run: its Delta logs copied, every
    other file hard-linked (the lake only ever adds files and deletes them, never changes one in
    place, so the source stays as it was), then synced. A plain copy of a 9M-events-a-day lake
    wrote 6.4 GB before every run; this writes its logs (a few MB). Whether the spread of the runs'
    times narrows is not settled: the first bench-history 9M run after it spread 2.25-2.45 s, the
    next 2.71-3.12 s."""
    shutil.copytree(source, target, copy_function=_link_or_copy)
    for log in sorted(target.rglob("_delta_log")):
        shutil.rmtree(log)
        shutil.copytree(source / log.relative_to(target), log)
    os.sync()


def measure_runs(name: str, raw: Path, events: int, work: Path, home: Path, floor_of: dict[str, float],
                 baseline: str | None, lake: Path | None = None, floor: bool = True) -> list[dict]:
    """The floor (unless ``floor`` is false: the corpus holds malformed records) and `lake ingest`
    into an empty lake (or a copy of ``lake``), and with ``baseline`` the same by another checkout."""
    rows: list[dict] = []
    if floor:
        seconds, rss = measure_floor(raw, work)
        floor_of[name] = seconds
        rows.append({"corpus": name, "run": "DuckDB single-SQL floor", "seconds": seconds, "rss": rss, "events": events})
    runs: list[tuple[str, str | None]] = [("lake ingest", None)]
    if baseline:
        runs.append(("lake ingest, baseline", baseline))
    for label, code in runs:
        target = work / f"lake-{re.sub('[^a-z0-9]+', '-', name)}-{len(rows)}"
        if lake is not None:
            copy_lake(lake, target)
        seconds, rss, out = measure_ingest(raw, target, home, code)
        rows.append({"corpus": name, "run": label, "seconds": seconds, "rss": rss, "events": events,
                     "summary": out.strip().splitlines()[-1]})
        shutil.rmtree(target, ignore_errors=True)
    return rows


def summarize(rounds: list[tuple[list[dict], dict[str, float]]]) -> tuple[list[dict], dict[tuple[str, str], float]]:
    """One row per (corpus, run) over the rounds (each round: its rows and its floors): median
    seconds, their range, the largest peak RSS, and ``ratio``, the median over the rounds of
    seconds / that round's floor (None without a floor). Also each derived ratio (history /
    empty, malformed / clean, dirty / clean, this code / baseline) as the median of the
    rounds' own."""
    keyed: dict[tuple[str, str], list[tuple[dict, dict[str, float]]]] = {}
    for rows, floors in rounds:
        for r in rows:
            keyed.setdefault((r["corpus"], r["run"]), []).append((r, floors))
    out = []
    for (corpus, run), seen in keyed.items():
        first = seen[0][0]
        seconds = [r["seconds"] for r, _ in seen]
        ratios = [r["seconds"] / f[r.get("floor", corpus)] for r, f in seen if f.get(r.get("floor", corpus))]
        out.append({**first, "seconds": median(seconds), "low": min(seconds), "high": max(seconds),
                    "rss": max(r["rss"] for r, _ in seen), "rounds": len(seen),
                    "ratio": median(ratios) if ratios else None})
    pairs = [(("synthetic, 30 days of history", "lake ingest"), ("synthetic", "lake ingest"), "history / empty lake"),
             (("synthetic, 1% malformed", "lake ingest"), ("synthetic", "lake ingest"), "synthetic: 1% malformed / clean"),
             (("dirty (1% bad lines)", "lake ingest"), ("clean (newline-delimited)", "lake ingest"), "dirty / clean")]
    pairs += [((c, "lake ingest"), (c, "lake ingest, baseline"), f"{c}: this code / baseline")
              for c, run in keyed if run == "lake ingest, baseline"]
    seconds_by_round = [{(r["corpus"], r["run"]): r["seconds"] for r in rows} for rows, _ in rounds]
    derived = {}
    for a, b, label in pairs:
        per_round = [by[a] / by[b] for by in seconds_by_round if a in by and b in by]
        if per_round:
            derived[label] = median(per_round)
    return out, derived


def print_results(rounds: list[tuple[list[dict], dict[str, float]]], load_at_start: float) -> None:
    rows, derived = summarize(rounds)
    n = len(rounds)
    print(f"\n{os.cpu_count()} cores, load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
          + (f"; {n} rounds: median seconds (range), median of the rounds' ratios" if n > 1 else "") + "\n")
    spread = f" {'range':>13}" if n > 1 else ""
    print(f"{'corpus':<22} {'run':<28} {'seconds':>8}{spread} {'events/s':>10} {'x floor':>8} {'peak RSS':>10}")
    for r in rows:
        ratio = f"{r['ratio']:>8.2f}" if r["ratio"] is not None else f"{'-':>8}"
        span = f" {r['low']:>6.2f}-{r['high']:<6.2f}" if n > 1 else ""
        print(f"{r['corpus']:<22} {r['run']:<28} {r['seconds']:>8.2f}{span} {r['events'] / r['seconds']:>10,.0f} {ratio} "
              f"{r['rss'] / 2**20:>7.0f} MiB")
    for label, value in derived.items():
        print(f"{label}: {value:.2f}")
    for r in rounds[-1][0]:  # the last round's own lines
        if "summary" in r:
            print(f"{r['corpus']}, {r['run']}: {r['summary']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--history-per-day", type=int, default=100_000)
    parser.add_argument("--cache", default=".bench")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--corpora", default="synthetic,synthetic-dirty,realistic,clean,dirty,big",
                        help="Comma-separated: synthetic (the generator's), synthetic-dirty (the same with 1%% "
                             "malformed records, concatenated), realistic, clean, dirty, big.")
    parser.add_argument("--objects", type=int, default=10, help="Objects of the production-shaped corpora.")
    parser.add_argument("--baseline", default=None,
                        help="A checkout of other code (its repository root): `lake ingest` runs again with it, same files.")
    parser.add_argument("--baseline-corpora", default=None,
                        help="Comma-separated corpora to run --baseline on (default: all of --corpora).")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Run every measurement this many times; print medians, ranges and median ratios.")
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the results here as JSON.")
    args = parser.parse_args(argv)

    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    wanted = args.corpora.split(",")
    compared = set((args.baseline_corpora or args.corpora).split(","))

    def baseline(corpus: str) -> str | None:
        return args.baseline if corpus in compared else None

    raw = ensure_landing_zone(cache / f"raw-{args.events}", args.events, BATCH_HOUR, seed=5)
    production = ensure_production_corpora(cache, args.events, args.objects) if set(wanted) & {"realistic", "clean", "dirty", "big"} else {}
    hist = None if args.skip_history or "synthetic" not in wanted else ensure_history_lake(
        cache, args.history_days, args.history_per_day)
    home = ensure_instance(cache / "dagster_home")
    load_at_start = os.getloadavg()[0]
    rounds = []
    for i in range(max(args.rounds, 1)):
        if args.rounds > 1:
            print(f"round {i + 1}/{args.rounds}", flush=True)
        rounds.append(measure_round(args, wanted, baseline, raw, production, hist, home, cache))
    print_results(rounds, load_at_start)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"events": args.events, "load": [load_at_start, os.getloadavg()[0]],
             "rounds": [{"rows": rows, "floors": floors} for rows, floors in rounds],
             "summary": summarize(rounds)[0]}, indent=2))


def measure_round(args, wanted: list[str], baseline, raw: Path, production: dict[str, Path], hist: Path | None,
                  home: Path, cache: Path) -> tuple[list[dict], dict[str, float]]:
    """Every wanted measurement once: the rows, and the floor seconds of each corpus."""
    rows: list[dict] = []
    floor_of: dict[str, float] = {}
    names = {"realistic": "realistic (Firehose)", "clean": "clean (newline-delimited)",
             "dirty": "dirty (1% bad lines)", "big": "one 128 MiB object"}
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        work = Path(tmp)
        if "synthetic" in wanted:
            rows += measure_runs("synthetic", raw, args.events, work, home, floor_of, baseline("synthetic"))
            if hist is not None:
                rows += [{**r, "floor": "synthetic"} for r in measure_runs(
                    "synthetic, 30 days of history", raw, args.events, work, home, floor_of, None, lake=hist,
                    floor=False)]
        if "synthetic-dirty" in wanted:
            dirty = ensure_landing_zone(cache / f"raw-{args.events}-malformed", args.events, BATCH_HOUR, seed=5,
                                        malformed=0.01)
            rows += [{**r, "floor": "synthetic"} for r in measure_runs(
                "synthetic, 1% malformed", dirty, args.events, work, home, floor_of, baseline("synthetic-dirty"),
                floor=False)]
        for name in ("realistic", "clean", "dirty", "big"):
            if name in wanted:
                path = production[name]
                extra = {"floor": names["clean"]} if name == "dirty" else {}
                rows += [{**r, **extra} for r in measure_runs(
                    names[name], path, corpus_events(path, args.events), work, home, floor_of, baseline(name),
                    floor=name != "dirty")]
    return rows, floor_of


if __name__ == "__main__":
    main()
