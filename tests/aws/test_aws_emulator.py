"""`make aws-local` / `make aws-local-stop`: the moto server in the background, with a pidfile and a log."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lake_pipeline.devtools import emulator
from tests.support.cli import run_lake

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e  # `lake emulator start` starts a moto server of its own (the subject here)
def test_emulator_start_status_env_stop(tmp_path):
    state = tmp_path / ".aws-local"
    started = run_lake("emulator", "start", "--state-dir", str(state), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    export = started.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"export AWS_ENDPOINT_URL=(http://127\.0\.0\.1:(\d+)) .*", export)
    assert m, export
    endpoint = m.group(1)
    pid = int((state / "moto.pid").read_text())
    try:
        assert "LAKE_RAW_URI=s3://lakehouse-local-raw/raw LAKE_URI=s3://lakehouse-local-lake/lake" in export
        assert f"DAGSTER_HOME={state.resolve() / 'dagster_home'}" in export
        assert (state / "env").read_text().strip() == export
        assert (state / "dagster_home" / "dagster.yaml").exists() and (state / "moto.log").exists()
        assert emulator.responds(endpoint)
        again = run_lake("emulator", "start", "--state-dir", str(state), cwd=tmp_path)
        assert "already running" in again.stderr and int((state / "moto.pid").read_text()) == pid
        status = run_lake("emulator", "status", "--state-dir", str(state), cwd=tmp_path)
        assert status.returncode == 0 and endpoint in status.stdout
        assert run_lake("emulator", "env", "--state-dir", str(state), cwd=tmp_path).stdout.strip() == export
    finally:
        stopped = run_lake("emulator", "stop", "--state-dir", str(state), cwd=tmp_path)
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert not (state / "moto.pid").exists() and not emulator.responds(endpoint)
    assert run_lake("emulator", "status", "--state-dir", str(state), cwd=tmp_path).returncode == 1
    assert "no moto server was running" in run_lake("emulator", "stop", "--state-dir", str(state), cwd=tmp_path).stdout


def test_make_help_lists_the_aws_loop_targets():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    described = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", out).splitlines():
        name, _, text = line.strip().partition(" ")
        described[name] = text.strip()
    for target in ("aws-local", "aws-local-stop", "bootstrap", "produce", "dev-aws"):
        assert described.get(target), target


def test_aws_local_state_is_gitignored():
    assert ".aws-local/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_aws_local_doc_mentions_only_files_and_targets_that_exist():
    doc = (ROOT / "docs" / "aws-local.md").read_text()
    for ref in set(re.findall(r"`((?:lake_pipeline|terraform|tests|docs)/[A-Za-z0-9_./-]+)`", doc)):
        assert (ROOT / ref.rstrip("/")).exists(), f"docs/aws-local.md mentions {ref}, which does not exist"
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"make ([a-z][a-z-]+)", doc)):
        assert re.search(rf"^{re.escape(target)}:.*## ", makefile, re.M), f"docs/aws-local.md mentions make {target}"
    assert "Locally the default target is Firehose" in doc and "no Kinesis→Firehose" in doc
