"""The local Dagster instance that `lake` and `make dev` share."""

from __future__ import annotations

from pathlib import Path

# Written to a new DAGSTER_HOME; dagster_home/dagster.yaml in the repo is the same text (a test checks).
LOCAL_DAGSTER_YAML = """\
# Local Dagster instance (`make dev`, `lake ingest`). Run storage lives next to this
# file and is gitignored. The AWS deployment uses dagster.aws.yaml instead.
telemetry:
  enabled: false

# One writer per lake table at a time: every batch's ingest step claims a slot in
# the `lake_writer` pool (pools default to one slot).
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 4
"""


def ensure_dagster_home(home: Path) -> Path:
    """Create ``home`` with the local dagster.yaml when it doesn't exist yet."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_DAGSTER_YAML)
    return home
