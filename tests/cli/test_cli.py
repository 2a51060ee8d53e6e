"""The `lake` command: end to end as a user runs it (the console script in real
subprocesses), and its error messages and exit codes (in-process, click's CliRunner)."""

from __future__ import annotations

import os
import re

import polars as pl
import pytest
from deltalake import DeltaTable

from tests.support.cli import invoke, run_lake, summary


@pytest.mark.e2e
def test_generate_ingest_query_end_to_end(tmp_path):
    home = tmp_path / "dagster_home"
    env = {"DAGSTER_HOME": str(home)}
    gen = run_lake("generate", "--out", "raw", "--events", "3000", "--seed", "3", "--start", "2025-11-20T13",
               "--object-seconds", "600", cwd=tmp_path, env=env)
    assert gen.returncode == 0, gen.stderr
    written = int(re.search(r"(\d+) records", gen.stdout).group(1))

    first = run_lake("ingest", "--raw", "raw", "--lake", "lake", "--quiet", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr  # quarantined records are not a failure
    s = summary(first.stdout)
    assert s["records"] == written
    assert s["inserted"] == 3000
    assert s["quarantined"] > 0 and s["duplicates"] > 0
    assert s["records"] == s["inserted"] + s["duplicates"] + s["quarantined"]

    events = pl.from_arrow(DeltaTable(str(tmp_path / "lake" / "events")).to_pyarrow_table())
    assert events.height == 3000 and events["event_uuid"].n_unique() == 3000

    # A redelivery batch: every redelivered record is a cross-batch duplicate or re-quarantined.
    run_lake("generate", "--out", "raw", "--events", "500", "--redeliver", "0.2", "--seed", "4",
         "--start", "2025-11-20T14", "--object-seconds", "600", cwd=tmp_path, env=env)
    second = summary(run_lake("ingest", "--raw", "raw", "--lake", "lake", "--quiet", cwd=tmp_path, env=env).stdout)
    assert second["inserted"] == 500
    assert second["duplicates"] >= 0.15 * 3000 * 0.9

    again = run_lake("ingest", "--raw", "raw", "--lake", "lake", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "nothing to ingest" in again.stdout

    q = run_lake("query", "--lake", "lake", "--format", "csv", "SELECT count(*) AS n, count(DISTINCT event_uuid) AS u FROM events",
             cwd=tmp_path, env=env)
    assert q.returncode == 0, q.stderr
    assert q.stdout.strip().splitlines()[-1] == "3500,3500"

    # Every CLI batch is a run in the instance under DAGSTER_HOME.
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.job_name == "ingest_job" and r.is_success for r in runs)
    assert (home / "dagster.yaml").exists()


def test_unusable_storage_exits_non_zero_with_one_clear_message(tmp_path):
    missing = invoke("ingest", "--raw", str(tmp_path / "nope"), "--lake", str(tmp_path / "lake"), cwd=tmp_path)
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'} does not exist: create it or pass the right path/URI"]
    assert missing.stdout == ""
    (tmp_path / "raw").mkdir()
    (tmp_path / "blocker").write_text("")
    blocked = invoke("ingest", "--raw", "raw", "--lake", str(tmp_path / "blocker" / "lake"), cwd=tmp_path)
    assert blocked.exit_code == 2
    assert len(blocked.stderr.strip().splitlines()) == 1 and "cannot create" in blocked.stderr


def test_query_errors_are_reported_plainly(tmp_path):
    r = invoke("query", "--lake", str(tmp_path), "SELECT * FROM no_such_table", cwd=tmp_path)
    assert r.exit_code == 1
    assert "no_such_table" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path):
    (tmp_path / "raw").mkdir()
    r = invoke("ingest", "--raw", "raw", "--lake", "lake", cwd=tmp_path, env={"LAKE_PARSER": "spark"})
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["error: LAKE_PARSER must be one of duckdb, python, not 'spark'"]
    r = invoke("ingest", "--raw", "raw", "--lake", "lake", cwd=tmp_path, env={"LAKE_BATCH_MAX_OBJECTS": "many"})
    assert r.exit_code == 2 and r.stderr.strip() == "error: LAKE_BATCH_MAX_OBJECTS must be an integer, not 'many'"
    assert not (tmp_path / "lake").exists()  # refused before any work


@pytest.mark.e2e
def test_the_console_command_exits_with_the_error_code(tmp_path):
    """`lake` as a process (``run``, the console script's entry point, not just the click group)
    turns a refusal into exit code 2 and one line on stderr."""
    r = run_lake("ingest", "--raw", str(tmp_path / "nope"), "--lake", str(tmp_path / "lake"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'} does not exist: create it or pass the right path/URI"]
