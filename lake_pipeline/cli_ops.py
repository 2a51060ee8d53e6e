"""`lake compact` and `lake marts`: the maintenance jobs, run in-process like `lake ingest`.

Each command runs the same Dagster job the schedule or the automation sensor runs,
against the instance in DAGSTER_HOME (default ./dagster_home), so the run, its
checks and its metadata show up in the UI. Registered on the `lake` group by
:func:`register` (see the end of cli.py).
"""

from __future__ import annotations

import time

import click

from lake_pipeline.lake.storage import StorageError, normalize_uri
from lake_pipeline.settings import EVENTS_TABLE, load_settings


def register(main: click.Group) -> None:
    main.add_command(compact)
    main.add_command(marts)


def _settings(lake: str | None):
    settings = load_settings(lake_uri=lake)
    return settings.with_overrides(raw_uri=normalize_uri(settings.raw_uri), lake_uri=normalize_uri(settings.lake_uri))


def _checks(result) -> list[tuple[str, bool, str]]:
    return [(e.check_name, e.passed, e.description or "") for e in result.get_asset_check_evaluations()]


def _metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def _run_error(result) -> str:
    """The first failed step's error, readable (the user's error first)."""
    from lake_pipeline.lake.alerts import error_text

    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            return f"step {event.step_key} failed: {error_text(event.step_failure_data.error).splitlines()[0]}"
    return f"run {result.run_id} failed; see the Dagster UI (make dev) for details"


def _echo_checks(result) -> bool:
    ok = True
    for name, passed, description in _checks(result):
        mark = click.style("passed", fg="green") if passed else click.style("FAILED", fg="red", bold=True)
        click.echo(f"check {name}: {mark} - {description}")
        ok = ok and passed
    return ok


@click.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--target-bytes", type=int, default=None,
              help="Target file size (default: LAKE_COMPACT_TARGET_FILE_BYTES, 128 MiB).")
@click.option("--retention-hours", type=int, default=None,
              help="Vacuum files unreferenced for this long (default: LAKE_VACUUM_RETENTION_HOURS, 168).")
@click.option("--unsafe-retention", is_flag=True,
              help="Allow a retention shorter than the table's minimum (7 days): readers and time travel "
                   "older than it break. Only when nothing else reads the table.")
@click.option("--no-vacuum", is_flag=True, help="Compact only; delete nothing.")
def compact(lake, target_bytes, retention_hours, unsafe_retention, no_vacuum):
    """Compact the events partitions micro-batches touched, verify, then vacuum."""
    from lake_pipeline.cli import _fail, _instance
    from lake_pipeline.definitions import defs
    from lake_pipeline.defs.maintenance.compaction import EVENTS_COMPACTION
    from lake_pipeline.defs.resources import LakeResource
    from lake_pipeline.lake.compaction import check_retention
    from lake_pipeline.lake.delta import Lake

    started = time.perf_counter()
    settings = _settings(lake)
    lake_ = Lake.from_settings(settings)
    hours = retention_hours if retention_hours is not None else settings.vacuum_retention_hours
    try:
        if not lake_.exists(EVENTS_TABLE):
            click.echo(f"nothing to compact: no events table in {settings.lake_uri}")
            return
        if not no_vacuum and not unsafe_retention:
            check_retention(lake_, hours)  # refuse before compacting anything
    except StorageError as exc:
        _fail(str(exc))
    plan_config = {"target_file_bytes": target_bytes or 0}
    run_config = {
        "resources": {"lake": LakeResource.run_config(settings)},
        "ops": {"events_compaction": {"ops": {"plan_events_compaction": {"config": plan_config}}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    if not no_vacuum:
        run_config["ops"]["events_vacuum"] = {
            "config": {"retention_hours": hours, "enforce_retention_duration": not unsafe_retention}
        }
    job = defs().resolve_job_def("events_compaction_job")
    result = job.execute_in_process(
        run_config=run_config,
        instance=_instance(),
        raise_on_error=False,
        asset_selection=[EVENTS_COMPACTION] if no_vacuum else None,
        tags={"lake/trigger": "cli"},
    )
    meta = _metadata(result, "events_compaction")
    if meta:
        click.echo(
            f"compacted {meta['partitions_compacted']} partition(s) in {meta['commits']} commit(s): "
            f"{meta['files_before']} -> {meta['files_after']} files, {meta['bytes_before']} -> {meta['bytes_after']} bytes; "
            f"events now has {meta['table_files']} files in {meta['table_partitions']} partitions "
            f"(at most {meta['max_files_per_partition']} per partition)"
        )
    checks_ok = _echo_checks(result)
    vac = _metadata(result, "events_vacuum")
    if vac:
        click.echo(f"vacuum: {vac['files_deleted']} file(s) deleted (retention {vac['retention_hours']} h)")
    if not result.success:
        _fail(_run_error(result) if checks_ok else "a blocking compaction check failed; nothing was vacuumed",
              code=1 if not checks_ok else 2)
    click.echo(f"seconds={time.perf_counter() - started:.2f} run_id={result.run_id}")


@click.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
def marts(lake):
    """Update hourly_event_counts for the hours that changed in events (what the automation sensor runs)."""
    from lake_pipeline.cli import _fail, _instance
    from lake_pipeline.definitions import defs
    from lake_pipeline.defs.resources import LakeResource
    from lake_pipeline.lake.delta import Lake

    started = time.perf_counter()
    settings = _settings(lake)
    try:
        if not Lake.from_settings(settings).exists(EVENTS_TABLE):
            click.echo(f"nothing to do: no events table in {settings.lake_uri}")
            return
    except StorageError as exc:
        _fail(str(exc))
    result = defs().resolve_job_def("hourly_event_counts_job").execute_in_process(
        run_config={
            "resources": {"lake": LakeResource.run_config(settings)},
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        },
        instance=_instance(),
        raise_on_error=False,
        tags={"lake/trigger": "cli"},
    )
    if not result.success:
        _fail(_run_error(result))
    meta = _metadata(result, "hourly_event_counts")
    click.echo(
        f"hourly_event_counts: events v{meta['previous_events_version']} -> v{meta['events_version']} "
        f"({meta['reason']}): {meta['hours_recomputed']} hour(s) recomputed, {meta['rows_written']} row(s) written"
    )
    ok = True
    for name, passed, description in _checks(result):
        # The freshness check warns on old data (e.g. the demo's fixed hours); only the counts must agree.
        mark = click.style("passed", fg="green") if passed else click.style("warning" if "fresh" in name else "FAILED", fg="yellow" if "fresh" in name else "red")
        click.echo(f"check {name}: {mark} - {description}")
        ok = ok and (passed or "fresh" in name)
    if not ok:
        _fail("hourly_event_counts disagrees with events", code=1)
    click.echo(f"seconds={time.perf_counter() - started:.2f} run_id={result.run_id}")
