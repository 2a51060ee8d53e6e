"""Real Dagster runs and synthetic landing zones for the operations tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from lake_pipeline.defs.shared import batch_run_tags
from lake_pipeline.defs.resources import LakeResource
from lake_pipeline.devtools.synthetic import generate
from lake_pipeline.engines.run import ingest_keys
from lake_pipeline.ingest.landing import list_pending
from lake_pipeline.settings import Settings
from lake_pipeline.storage.objects import LocalStorage


def run_job(defs, name: str, settings: Settings, instance, run_config: dict | None = None, **kwargs):
    config = {"resources": {"lake": LakeResource.run_config(settings)}, **(run_config or {})}
    return defs.resolve_job_def(name).execute_in_process(
        run_config=config, instance=instance, raise_on_error=False, **kwargs
    )


def ingest_run(defs, settings: Settings, instance, keys: list[str]):
    """One real run of ingest_job for ``keys`` (what the landing sensor requests)."""
    return run_job(
        defs, "ingest_job", settings, instance,
        {"ops": {"ingest_batch": {"config": {"source_keys": keys}}}}, tags=batch_run_tags(keys),
    )


def synthetic_landing_zone(raw_dir: Path, events: int, seed: int = 7, object_seconds: int = 120, **kw) -> list[str]:
    res = generate(
        LocalStorage(str(raw_dir)), events, start=datetime(2025, 11, 20, 13, tzinfo=UTC), duplicates=0.05,
        malformed=0.01, late=0.03, seed=seed, object_seconds=object_seconds, span_seconds=3600, **kw,
    )
    return sorted(res.keys)


def ingest_one_object_per_batch(settings: Settings) -> int:
    """Every pending raw object in its own micro-batch (the worst case for small files)."""
    pending = list_pending(settings)
    for obj in pending:
        ingest_keys(settings, [obj.key])
    return len(pending)
