"""Several `lake ingest` / `lake backfill` processes started at once, on a new and on an existing
Dagster home: every one exits 0, and the lake is exactly what one clean ingest makes."""

from __future__ import annotations

import time

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, QUARANTINE_TABLE, load_settings
from tests.support.cli import run_lake_async, wait_all
from tests.support.runs import synthetic_landing_zone

pytestmark = pytest.mark.e2e

# 6 objects in batches of 2: the processes compete for 3 plans; duplicates span objects.
SMALL_BATCHES = {"LAKE_BATCH_MAX_OBJECTS": "2"}


def _table(path, *columns) -> pl.DataFrame:
    return pl.from_arrow(DeltaTable(str(path)).to_pyarrow_table(columns=list(columns) or None))


def _clean_lake(tmp_path, raw) -> dict[str, pl.DataFrame]:
    """What one ingest, alone, makes of ``raw``."""
    settings = load_settings(raw_uri=str(raw), lake_uri=str(tmp_path / "clean"), batch_max_objects=2)
    ingest_keys(settings, [p.relative_to(raw).as_posix() for p in sorted(raw.rglob("*.gz"))])
    return _contents(tmp_path / "clean")


def _contents(lake) -> dict[str, pl.DataFrame]:
    return {
        "events": _table(lake / EVENTS_TABLE, "event_uuid", "created_at", "_source_key").sort("event_uuid"),
        "quarantine": _table(lake / QUARANTINE_TABLE, "source_key", "_ordinal", "reason").sort("source_key", "_ordinal"),
        "ledger": _table(lake / LEDGER_TABLE, "source_key", "records", "inserted", "duplicates", "quarantined")
        .sort("source_key"),
    }


def _start(tmp_path, env, commands):
    # 22-25 s here, about twice that on a slow CI machine; two phases of a test must fit pytest's 300 s.
    return wait_all([run_lake_async(*args, cwd=tmp_path, env=env) for args in commands], timeout=120)


def _assert_all_succeeded(results):
    for proc, out, err in results:
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "OperationalError" not in err, err
        last = out.strip().splitlines()[-1]
        assert last.startswith(("objects=", "nothing to ingest")), out
        if last.startswith("nothing to ingest: another ingest claimed"):
            # It ingested nothing: no progress bar left saying it did.
            assert "100%" not in err and "/6 [" not in err.replace("0/6 [", ""), err


def test_three_ingests_at_once_on_a_new_dagster_home_all_exit_0_and_the_lake_is_exact(tmp_path):
    raw = tmp_path / "raw"
    keys = synthetic_landing_zone(raw, 1800, seed=33, object_seconds=600)
    assert len(keys) == 6
    home = tmp_path / "new_home"  # does not exist: the three create it together
    env = {**SMALL_BATCHES, "DAGSTER_HOME": str(home)}
    ingest = ("ingest", "--raw", "raw", "--lake", "lake")
    _assert_all_succeeded(_start(tmp_path, env, [ingest] * 3))
    clean = _clean_lake(tmp_path, raw)
    got = _contents(tmp_path / "lake")
    assert got["events"]["event_uuid"].n_unique() == got["events"].height == 1800  # every event exactly once
    for name in clean:
        assert got[name].equals(clean[name]), name
    assert sorted(got["ledger"]["source_key"]) == keys

    # The same race on the home that now exists, with new objects: as exact.
    more = synthetic_landing_zone(raw, 1200, seed=34, object_seconds=900)
    _assert_all_succeeded(_start(tmp_path, env, [ingest] * 3))
    ledger = _table(tmp_path / "lake" / LEDGER_TABLE, "source_key")
    assert sorted(ledger["source_key"]) == sorted(set(keys) | set(more))
    events = _table(tmp_path / "lake" / EVENTS_TABLE, "event_uuid")
    assert events["event_uuid"].n_unique() == events.height


def test_ingests_and_a_backfill_at_once_on_a_new_dagster_home_all_exit_0_and_the_lake_is_exact(tmp_path):
    raw = tmp_path / "raw"
    synthetic_landing_zone(raw, 1800, seed=35, object_seconds=600)  # arrival hour 2025-11-20T13
    env = {**SMALL_BATCHES, "DAGSTER_HOME": str(tmp_path / "new_home")}
    ingest = ("ingest", "--raw", "raw", "--lake", "lake", "--quiet")
    backfill = ("backfill", "--raw", "raw", "--lake", "lake", "--start", "2025-11-20T00", "--end", "2025-11-20T23")
    results = _start(tmp_path, env, [ingest, backfill, ingest])
    for proc, out, err in results:
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    got = _contents(tmp_path / "lake")
    clean = _clean_lake(tmp_path, raw)
    for name in clean:
        assert got[name].equals(clean[name]), name


def test_a_hung_process_fails_the_wait_with_its_stack_and_is_killed(tmp_path):
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time\ndef hang_here():\n    time.sleep(600)\nhang_here()"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    quick = subprocess.Popen([sys.executable, "-c", "print('ok')"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    with pytest.raises(AssertionError, match="1 of 2 processes still running or holding their output open") as failure:
        wait_all([sleeper, quick], timeout=5)
    assert sleeper.wait(timeout=10) != 0  # killed, not left behind
    message = str(failure.value)
    # Where it hangs, when py-spy may read the process (it may not, without ptrace rights).
    assert "hang_here" in message if f"pid {sleeper.pid} stacks" in message else f"pid {sleeper.pid}: no stacks" in message


def test_a_process_whose_child_holds_its_output_open_fails_the_wait_and_the_child_is_killed(tmp_path):
    import os
    import subprocess
    import sys

    child = tmp_path / "child.pid"
    # Exits at once, but leaves a child with its stdout (a parse worker, say) that sleeps on.
    script = ("import os, subprocess, sys, time\n"
              f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(child)!r}, 'w').write(str(c.pid))\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    with pytest.raises(AssertionError, match="1 of 1 processes still running or holding their output open"):
        wait_all([parent], timeout=5)
    assert parent.poll() == 0  # it had ended by itself
    pid = int(child.read_text())
    for _ in range(50):  # killed with its group; reaped by init once its parent is gone
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the child {pid} still runs")


def test_a_lake_process_still_running_after_lake_dump_stacks_after_seconds_prints_its_stacks(tmp_path):
    # `lake ingest` of an empty landing zone takes a second or two (Dagster's start-up): long enough.
    (tmp_path / "raw").mkdir()
    env = {"LAKE_DUMP_STACKS_AFTER_SECONDS": "0.2", "DAGSTER_HOME": str(tmp_path / "home")}
    [(proc, _, err)] = wait_all([run_lake_async("ingest", "--raw", "raw", "--lake", "lake", cwd=tmp_path, env=env)],
                                timeout=120)
    assert proc.returncode == 0 and "every thread's stack (most recent call last)" in err and "Thread MainThread" in err, err
    [(proc, _, err)] = wait_all([run_lake_async("ingest", "--raw", "raw", "--lake", "lake", cwd=tmp_path,
                                                env={**env, "LAKE_DUMP_STACKS_AFTER_SECONDS": ""})], timeout=120)
    assert proc.returncode == 0 and "every thread's stack" not in err, err
