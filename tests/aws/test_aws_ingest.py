"""`lake ingest` with s3:// URIs: the same tables as a local ingest, concurrent writers
(real processes), and one clear error line when S3 is unusable (in-process, CliRunner)."""

from __future__ import annotations

import re

import polars as pl
import pytest
from deltalake import DeltaTable

from lake_pipeline.devtools import emulator
from lake_pipeline.storage import aws
from lake_pipeline.devtools.bootstrap import bootstrap
from lake_pipeline.storage.uris import is_s3, join
from lake_pipeline.settings import EVENTS_TABLE, LEDGER_TABLE, PLANS_TABLE, QUARANTINE_TABLE
from tests.support.aws import credentials_checked
from tests.support.cli import invoke, run_lake, run_lake_async, summary, upload_tree, wait_all

pytestmark = pytest.mark.e2e  # the moto server, and `lake` in subprocesses


def _table(uri: str, name: str) -> pl.DataFrame:
    target = join(uri, name)
    opts = aws.delta_storage_options(target) if is_s3(uri) else None
    return pl.from_arrow(DeltaTable(target, storage_options=opts).to_pyarrow_table())


def _generate(tmp_path, events: int, seed: int, object_seconds: int) -> dict[str, int]:
    gen = run_lake("generate", "--out", str(tmp_path / "raw"), "--events", str(events), "--seed", str(seed),
               "--start", "2025-11-20T13", "--object-seconds", str(object_seconds), cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    m = re.search(r"wrote (\d+) objects .*: (\d+) records = (\d+) events", gen.stdout)
    return dict(zip(("objects", "records", "events"), (int(g) for g in m.groups()), strict=True))


def test_ingest_over_s3_gives_the_same_tables_as_a_local_ingest(bootstrapped, tmp_path):
    s = bootstrapped
    made = _generate(tmp_path, events=3000, seed=21, object_seconds=300)
    keys = upload_tree(tmp_path / "raw", s.raw_uri)
    assert len(keys) == made["objects"]

    on_s3 = run_lake_async("ingest", "--raw", s.raw_uri, "--lake", s.lake_uri, "--quiet", cwd=tmp_path,
                       env={"DAGSTER_HOME": str(tmp_path / "home-s3")})
    local = run_lake_async("ingest", "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake"), "--quiet",
                       cwd=tmp_path, env={"DAGSTER_HOME": str(tmp_path / "home-local")})
    (_, s3_out, s3_err), (_, local_out, local_err) = wait_all([on_s3, local])
    assert on_s3.returncode == 0, s3_err
    assert local.returncode == 0, local_err
    assert summary(s3_out) == summary(local_out)
    assert summary(s3_out)["records"] == made["records"] and summary(s3_out)["inserted"] == made["events"]

    lake_local = str(tmp_path / "lake")
    by = ["event_uuid", "created_at"]
    s3_events, local_events = _table(s.lake_uri, EVENTS_TABLE).sort(by), _table(lake_local, EVENTS_TABLE).sort(by)
    assert s3_events.height == made["events"]
    assert s3_events.equals(local_events)

    def quarantine(uri: str) -> pl.DataFrame:
        return _table(uri, QUARANTINE_TABLE).drop("quarantined_at").sort("source_key", "_ordinal", nulls_last=True)

    assert quarantine(s.lake_uri).height > 0
    assert quarantine(s.lake_uri).equals(quarantine(lake_local))

    counts = ["_batch_id", "source_key", "object_bytes", "records", "inserted", "duplicates", "quarantined"]
    assert _table(s.lake_uri, LEDGER_TABLE).select(counts).sort("source_key").equals(
        _table(lake_local, LEDGER_TABLE).select(counts).sort("source_key"))
    assert DeltaTable(join(s.lake_uri, EVENTS_TABLE), storage_options=aws.delta_storage_options(s.lake_uri)
                      ).metadata().partition_columns == ["event_date", "event_type"]


def test_two_concurrent_ingests_on_s3_lose_nothing_and_duplicate_nothing(bootstrapped, tmp_path):
    s = bootstrapped
    # Duplicates spread across objects (producer retries, redeliveries), so batches depend on each other.
    made = _generate(tmp_path, events=1800, seed=33, object_seconds=600)  # 6 objects -> 3 batches of 2
    keys = upload_tree(tmp_path / "raw", s.raw_uri)
    small_batches = {"LAKE_BATCH_MAX_OBJECTS": "2"}
    procs = [
        run_lake_async("ingest", "--quiet", cwd=tmp_path, env={**small_batches, "DAGSTER_HOME": str(tmp_path / f"home{i}")})
        for i in range(2)
    ]
    for p, _, err in wait_all(procs):
        assert p.returncode == 0, err

    events = _table(s.lake_uri, EVENTS_TABLE)
    assert events["event_uuid"].n_unique() == events.height  # no duplicates
    assert events.height == made["events"]  # nothing lost
    ledger = _table(s.lake_uri, LEDGER_TABLE)
    assert sorted(ledger["source_key"]) == sorted(keys)  # every object exactly once
    assert ledger["records"].sum() == made["records"]
    assert ledger["records"].sum() == ledger["inserted"].sum() + ledger["duplicates"].sum() + ledger["quarantined"].sum()
    assert ledger["inserted"].sum() == events.height
    assert _table(s.lake_uri, QUARANTINE_TABLE).height == ledger["quarantined"].sum()
    plans = _table(s.lake_uri, PLANS_TABLE)
    assert plans["_batch_id"].n_unique() == plans.height == ledger["_batch_id"].n_unique()
    assert sorted(k for ks in plans["source_keys"] for k in ks) == sorted(keys)  # each key in one plan
    # Both processes did work (they raced), and the lake is the same as one clean run's: the next ingest is a no-op.
    again = run_lake("ingest", cwd=tmp_path, env={"DAGSTER_HOME": str(tmp_path / "home0")})
    assert again.returncode == 0 and "nothing to ingest" in again.stdout


def _one_error_line(result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_unusable_s3_gives_one_clear_error_line(bootstrapped, tmp_path, monkeypatch):
    s = bootstrapped
    raw, lake_uri = s.raw_uri, s.lake_uri

    missing_raw = invoke("ingest", "--raw", "s3://no-such-bucket-xyz/raw", "--lake", lake_uri, cwd=tmp_path)
    assert _one_error_line(missing_raw) == (
        "error: bucket of s3://no-such-bucket-xyz/raw does not exist: create it (make bootstrap) or fix the URI")
    missing_lake = invoke("ingest", "--raw", raw, "--lake", "s3://no-such-bucket-xyz/lake", cwd=tmp_path)
    assert _one_error_line(missing_lake) == (
        "error: bucket of s3://no-such-bucket-xyz/lake does not exist: create it (make bootstrap) or fix the URI")
    query = invoke("query", "--lake", "s3://no-such-bucket-xyz/lake", "SELECT count(*) FROM events", cwd=tmp_path)
    assert "bucket of s3://no-such-bucket-xyz/lake does not exist" in _one_error_line(query)

    down = f"http://127.0.0.1:{emulator.free_port()}"
    unreachable = invoke("ingest", "--raw", raw, "--lake", lake_uri, cwd=tmp_path,
                         env={"AWS_ENDPOINT_URL": down, "AWS_MAX_ATTEMPTS": "1"})
    line = _one_error_line(unreachable)
    assert line.startswith(f"error: cannot reach AWS for {raw}: ") and f"AWS_ENDPOINT_URL={down}" in line
    assert "make aws-local" in line

    no_creds = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    anonymous = invoke("ingest", "--raw", raw, "--lake", lake_uri, cwd=tmp_path, env=no_creds)
    assert _one_error_line(anonymous) == (
        f"error: no AWS credentials for {raw}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")


def test_rejected_credentials_give_one_clear_error_line(aws_env, tmp_path):
    # The session's moto server, checking credentials for the length of the call (as AWS does).
    with credentials_checked(aws_env.endpoint):
        r = invoke("ingest", "--raw", "s3://some-bucket/raw", "--lake", "s3://some-bucket/lake", cwd=tmp_path)
    assert _one_error_line(r) == (
        "error: AWS rejected the credentials for s3://some-bucket/raw (InvalidAccessKeyId): "
        "check AWS_ACCESS_KEY_ID/AWS_PROFILE")


def test_bootstrap_refuses_to_run_against_real_aws(aws_settings, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    r = invoke("bootstrap", cwd=tmp_path)
    assert "AWS_ENDPOINT_URL is not set" in _one_error_line(r)
    with pytest.raises(Exception, match="AWS_ENDPOINT_URL is not set"):
        bootstrap(aws_settings)
