"""The `lake` command in tests as a real process (:func:`run_lake`, :func:`run_lake_async`;
e2e tests only); uploads, summaries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support import tiers

LAKE = [sys.executable, "-m", "lake_pipeline.cli.main"]


def run_lake(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the `lake` command in a process of its own, as a user would, with the test's environment."""
    tiers.require(tiers.E2E, "runs the `lake` command in a subprocess")
    return subprocess.run(
        [*LAKE, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


def run_lake_async(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """:func:`run_lake` without waiting: the running process (its output is piped)."""
    tiers.require(tiers.E2E, "runs the `lake` command in a subprocess")
    return subprocess.Popen(
        [*LAKE, *args], cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def upload_tree(local: Path, uri: str) -> list[str]:
    """Upload a local landing zone to ``uri`` (s3://bucket/prefix); return the keys, relative to it."""
    from lake_pipeline.storage.objects import open_storage

    target = open_storage(uri)
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        key = path.relative_to(local).as_posix()
        target.write(key, path.read_bytes())
        keys.append(key)
    return keys


def summary(stdout: str) -> dict[str, int]:
    """The counts of `lake ingest`'s last line (objects=... records=...)."""
    line = [ln for ln in stdout.splitlines() if ln.startswith("objects=")][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=([\d,]+)(?=\s)", line + " ")
            if k in ("objects", "records", "inserted", "duplicates", "quarantined")}
