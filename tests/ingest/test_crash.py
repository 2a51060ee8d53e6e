"""Crash safety: SIGKILL `lake ingest` at named points and at arbitrary moments inside a
batch, run it again, and the tables are exactly what one clean run produces.

Every test first proves that its kill landed where it says (the process died of SIGKILL,
and the lake holds the half-done batch the kill left behind) and only then checks the
re-run, so a kill that came too late (the ingest had already finished) fails the test
instead of passing it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.ingest.ledger import Plan, all_plans, processed_keys, unfinished_plans
from lake_pipeline.settings import (
    DEDUPE_INDEX_TABLE,
    EVENTS_TABLE,
    HOURLY_FEED_TABLE,
    LEDGER_TABLE,
    QUARANTINE_TABLE,
    Settings,
    load_settings,
)
from lake_pipeline.tables.lake import Lake
from tests.support.cli import LAKE, run_lake

pytestmark = pytest.mark.e2e  # `lake ingest` processes, killed with SIGKILL

SMALL_BATCHES = {"LAKE_BATCH_MAX_OBJECTS": "2"}  # 8 objects -> 4 batches
# In the order a batch commits them.
COMMITTED = (EVENTS_TABLE, DEDUPE_INDEX_TABLE, HOURLY_FEED_TABLE, QUARANTINE_TABLE, LEDGER_TABLE)


def snapshot(lake_dir: Path) -> dict[str, list[tuple]]:
    """Table contents, without batch ids (a crashed batch may be re-planned under a new id)."""
    shapes = {
        EVENTS_TABLE: ["event_uuid", "event_name", "created_at", "created_datetime", "event_type", "event_subtype",
                       "event_date", "payload", "_source_key", "_ordinal"],
        QUARANTINE_TABLE: ["raw_record", "reason", "source_key", "_ordinal"],
        LEDGER_TABLE: ["source_key", "records", "inserted", "duplicates", "quarantined"],
        DEDUPE_INDEX_TABLE: ["event_uuid", "created_at", "key", "bucket", "created_date", "_source_key"],
    }
    out = {}
    for table, cols in shapes.items():
        df = pl.from_arrow(DeltaTable(str(lake_dir / table)).to_pyarrow_table()).select(cols)
        out[table] = df.sort(cols, nulls_last=True).rows()
    # The mart's feed, summed over batches (a re-planned batch may group its objects differently).
    keys = ["event_hour", "event_name", "event_type", "event_subtype", "user_id"]
    feed = pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_FEED_TABLE)).to_pyarrow_table())
    out[HOURLY_FEED_TABLE] = feed.group_by(keys).agg(pl.col("events").sum()).sort(keys, nulls_last=True).rows()
    return out


def lake_settings(root: Path, lake_name: str) -> Settings:
    return load_settings(raw_uri=str(root / "raw"), lake_uri=str(root / lake_name))


def commits_of(lake: Lake, plan: Plan) -> tuple[bool, ...]:
    """Which of the batch's commits (events, index, feed, quarantine, ledger) are in the lake."""
    return tuple(lake.batch_committed(table, plan.batch_id) for table in COMMITTED)


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    r = run_lake("generate", "--out", "raw", "--events", "4000", "--seed", "21", "--start", "2025-11-20T13",
                 "--object-seconds", "450", "--malformed", "0.02", cwd=root)
    assert r.returncode == 0, r.stderr
    clean = run_lake("ingest", "--raw", "raw", "--lake", "clean", "--quiet", cwd=root,
                     env={**SMALL_BATCHES, "DAGSTER_HOME": str(root / "home-clean")})
    assert clean.returncode == 0, clean.stderr
    # Every batch of the clean run writes all three tables (each has malformed records), so a
    # commit missing from a crashed batch is one the kill prevented, not one it never needed.
    lake = Lake.from_settings(lake_settings(root, "clean"))
    plans = all_plans(lake)
    assert len(plans) == 4 and all(commits_of(lake, p) == (True, True, True, True, True) for p in plans)
    return root, snapshot(root / "clean")


def _recover_and_compare(root: Path, lake_name: str, expected, env):
    again = run_lake("ingest", "--raw", "raw", "--lake", lake_name, "--quiet", cwd=root, env=env)
    assert again.returncode == 0, again.stderr
    assert snapshot(root / lake_name) == expected
    settings = lake_settings(root, lake_name)
    assert list_pending(settings) == [] and unfinished_plans(Lake.from_settings(settings)) == []


# What the lake holds when the first batch dies at each fault-injection point
# (LAKE_FAULT_INJECTION; lake_pipeline/settings.py): its (events, index, feed, quarantine, ledger) commits.
BOUNDARIES = {
    "after_parse": (False, False, False, False, False),
    "after_events": (True, False, False, False, False),
    "after_index": (True, True, False, False, False),
    "after_feed": (True, True, True, False, False),
    "after_quarantine": (True, True, True, True, False),
    "after_ledger": (True, True, True, True, True),
}


@pytest.mark.parametrize("point", list(BOUNDARIES))
def test_sigkill_at_each_commit_boundary_then_rerun(landing, point):
    root, expected = landing
    env = {**SMALL_BATCHES, "DAGSTER_HOME": str(root / f"home-{point}")}
    crashed = run_lake("ingest", "--raw", "raw", "--lake", point, "--quiet", cwd=root,
                       env={**env, "LAKE_FAULT_INJECTION": point})
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)

    # The kill landed in the first batch, at the named point.
    settings = lake_settings(root, point)
    lake = Lake.from_settings(settings)
    plans = all_plans(lake)
    assert len(plans) == 1, plans  # died in its first batch: no later batch was planned
    (first,) = plans
    assert commits_of(lake, first) == BOUNDARIES[point]
    pending = {o.key for o in list_pending(settings, lake)}
    if point == "after_ledger":
        # Nothing is unfinished, yet the process died: the ledger holds exactly the first batch.
        assert unfinished_plans(lake) == []
        assert processed_keys(lake) == set(first.source_keys)
        assert len(pending) == 6 and pending.isdisjoint(first.source_keys)
    else:
        assert unfinished_plans(lake) == [first]  # planned, never reached the ledger
        assert len(pending) == 8 and set(first.source_keys) <= pending

    _recover_and_compare(root, point, expected, env)


ATTEMPTS = 5
POLL_SECONDS = 0.005
START_DEADLINE_SECONDS = 120  # for the batch to be planned at all (not a timing assertion: a hang guard)


def _kill_inside_batch(root: Path, lake_name: str, env: dict, batch_id: int, delay: float):
    """Start `lake ingest`, wait until batch ``batch_id`` is planned and not yet in the ledger,
    wait ``delay`` more seconds, SIGKILL it. Return (return code, unfinished plans, the
    unfinished batch's commits); the caller decides whether the kill landed mid-batch."""
    lake = Lake.from_settings(lake_settings(root, lake_name))
    log = root / f"{lake_name}.stderr"
    with open(log, "w") as stderr:  # a file, not a pipe: nothing reads it while the process runs
        proc = subprocess.Popen([*LAKE, "ingest", "--raw", "raw", "--lake", lake_name, "--quiet"], cwd=root,
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while proc.poll() is None and time.monotonic() < deadline:
            if any(p.batch_id == batch_id for p in unfinished_plans(lake)):
                break
            if batch_id in {p.batch_id for p in all_plans(lake)}:
                break  # planned and finished between two looks: kill anyway, the caller sees it missed
            time.sleep(POLL_SECONDS)
        else:
            assert proc.poll() is not None, f"batch {batch_id} was not planned in {START_DEADLINE_SECONDS} s"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)  # a no-op when it has exited already (then rc is 0: a miss)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-3000:]
    left = unfinished_plans(lake)
    return proc.returncode, left, (commits_of(lake, left[0]) if left else None)


@pytest.mark.parametrize(("batch_id", "delay"), [(1, 0.0), (2, 0.03), (3, 0.06)])
def test_sigkill_at_an_arbitrary_moment_inside_a_batch_then_rerun(landing, batch_id, delay):
    """The kill comes ``delay`` seconds after batch ``batch_id`` was planned: anywhere in its
    parse, dedupe, Parquet writes or commits. Should the batch be done by then (a loaded
    machine, a fast batch), the attempt did not test a crash: it is retried on a fresh lake
    with a shorter delay, and the test fails if no attempt landed mid-batch."""
    root, expected = landing
    tried = []
    for attempt in range(ATTEMPTS):
        name = f"timer-{batch_id}-{attempt}"
        env = {**SMALL_BATCHES, "DAGSTER_HOME": str(root / f"home-{name}")}
        code, left, commits = _kill_inside_batch(root, name, env, batch_id, delay)
        tried.append((delay, code, [p.batch_id for p in left], commits))
        if code == -signal.SIGKILL and left:
            break
        delay = delay / 2 if attempt < ATTEMPTS - 3 else 0.0  # then kill as soon as the batch is seen
    else:
        pytest.fail(f"no kill landed inside a batch in {ATTEMPTS} attempts (delay, rc, unfinished, commits): {tried}")

    # It landed: the process died of SIGKILL and left one batch planned but not in the ledger,
    # in batch order (an earlier batch is complete, a later one was never planned).
    assert code == -signal.SIGKILL
    (plan,) = left
    assert plan.batch_id in (batch_id, batch_id + 1), tried
    assert commits in {c for c in BOUNDARIES.values() if not c[-1]}, tried  # a prefix of the commits, no ledger
    lake = Lake.from_settings(lake_settings(root, name))
    assert [p.batch_id for p in all_plans(lake)] == list(range(1, plan.batch_id + 1))
    assert not processed_keys(lake) & set(plan.source_keys)

    _recover_and_compare(root, name, expected, env)
