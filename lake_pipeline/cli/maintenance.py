"""`lake compact`, `lake marts` and `lake index build`: the maintenance jobs, run in-process like `lake ingest`.

Each command runs the same Dagster job the schedule or the automation sensor runs,
against the instance in DAGSTER_HOME (default ./dagster_home), so the run, its
checks and its metadata show up in the UI. Registered on the `lake` group in main.py.
"""

from __future__ import annotations

import time

import click

from lake_pipeline.cli.common import (
    check_evaluations,
    command_settings,
    fail,
    instance as open_instance,
    lake_run_config,
    materialization_metadata,
    run_error,
)
from lake_pipeline.settings import EVENTS_TABLE
from lake_pipeline.storage.errors import StorageError



def _echo_checks(result) -> bool:
    ok = True
    for name, passed, description in check_evaluations(result):
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
@click.option("--no-vacuum", is_flag=True, help="Compact only; delete nothing (events, the mart's state and the bookkeeping tables are not vacuumed).")
def compact(lake, target_bytes, retention_hours, unsafe_retention, no_vacuum):
    """Compact the events partitions micro-batches touched, verify, then vacuum."""
    from lake_pipeline.definitions import defs
    from lake_pipeline.defs.maintenance.compaction import (
        BOOKKEEPING_COMPACTION,
        DEDUPE_INDEX_MAINTENANCE,
        EVENTS_COMPACTION,
        MART_STATE_MAINTENANCE,
    )
    from lake_pipeline.maintenance.compaction import check_retention
    from lake_pipeline.tables.lake import Lake

    started = time.perf_counter()
    settings = command_settings(lake=lake)
    lake_ = Lake.from_settings(settings)
    hours = retention_hours if retention_hours is not None else settings.vacuum_retention_hours
    try:
        if not lake_.exists(EVENTS_TABLE):
            click.echo(f"nothing to compact: no events table in {settings.lake_uri}")
            return
        if not no_vacuum and not unsafe_retention:
            check_retention(lake_, hours)  # refuse before compacting anything
    except StorageError as exc:
        fail(str(exc))
    plan_config = {"target_file_bytes": target_bytes or 0}
    run_config = lake_run_config(settings, events_compaction={"ops": {"plan_events_compaction": {"config": plan_config}}})
    if no_vacuum:
        for step in ("mart_state_maintenance", "bookkeeping_compaction"):
            run_config["ops"][step] = {"config": {"vacuum": False}}
    else:
        run_config["ops"]["events_vacuum"] = {
            "config": {"retention_hours": hours, "enforce_retention_duration": not unsafe_retention}
        }
    job = defs().resolve_job_def("events_compaction_job")
    result = job.execute_in_process(
        run_config=run_config,
        instance=open_instance(),
        raise_on_error=False,
        asset_selection=([EVENTS_COMPACTION, DEDUPE_INDEX_MAINTENANCE, MART_STATE_MAINTENANCE, BOOKKEEPING_COMPACTION]
                         if no_vacuum else None),
        tags={"lake/trigger": "cli"},
    )
    meta = materialization_metadata(result, "events_compaction")
    if meta:
        click.echo(
            f"compacted {meta['partitions_compacted']} partition(s) in {meta['commits']} commit(s): "
            f"{meta['files_before']} -> {meta['files_after']} files, {meta['bytes_before']} -> {meta['bytes_after']} bytes; "
            f"events now has {meta['table_files']} files in {meta['table_partitions']} partitions "
            f"(at most {meta['max_files_per_partition']} per partition)"
        )
    checks_ok = _echo_checks(result)
    index = materialization_metadata(result, "dedupe_index_maintenance")
    if index:
        click.echo(f"seen-keys index: {index['expired_rows_dropped']} expired row(s) dropped, "
                   f"{index['dates_compacted']} date(s) compacted ({index['files_rewritten']} files rewritten)")
    state = materialization_metadata(result, "mart_state_maintenance")
    if state:
        click.echo(f"mart users state: {state['dates_rewritten']} date(s) rewritten in full, {state['dates_merged']} "
                   f"merged ({state['rows_rewritten']} rows rewritten), {state['key_files_written']} key file(s) written"
                   + ("; stopped by a mart update, the next compaction finishes" if state["stopped_by_a_mart_update"] else ""))
    books = materialization_metadata(result, "bookkeeping_compaction")
    if books:
        click.echo("bookkeeping tables: " + ", ".join(f"{k.removesuffix('_files_compacted')} {v} file(s) compacted"
                                                      for k, v in books.items() if k.endswith("_files_compacted")))
    vac = materialization_metadata(result, "events_vacuum")
    if vac:
        click.echo(f"vacuum: {vac['files_deleted']} file(s) deleted (retention {vac['retention_hours']} h)")
    if not result.success:
        fail(run_error(result) if checks_ok else "a blocking compaction check failed; nothing was vacuumed",
              code=1 if not checks_ok else 2)
    click.echo(f"seconds={time.perf_counter() - started:.2f} run_id={result.run_id}")


@click.group()
def index():
    """The seen-keys index (_dedupe_index) that dedupe reads."""


@index.command("build")
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
def index_build(lake):
    """Build the index from events (one pass over the dates within LAKE_DEDUPE_RETENTION_DAYS, one
    commit per date; run it again to resume). Until it is built, dedupe reads events. To build it
    anew, delete the lake's _dedupe_index/ directory (prefix) first."""
    from lake_pipeline.ingest import seen_index
    from lake_pipeline.settings import DEDUPE_INDEX_TABLE
    from lake_pipeline.tables.lake import Lake

    started = time.perf_counter()
    settings = command_settings(lake=lake)
    lake_ = Lake.from_settings(settings)
    try:
        done = seen_index.build_index(lake_, settings, lambda message, rows: click.echo(f"{message}: {rows} rows"))
    except StorageError as exc:
        fail(str(exc))
    buckets = seen_index.recorded_buckets(lake_.table(DEDUPE_INDEX_TABLE))
    click.echo(f"seen-keys index ready: {done['rows']} row(s) from {done['dates']} date(s) indexed in this run, "
               f"{buckets} buckets; seconds={time.perf_counter() - started:.2f}")


@click.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
def marts(lake):
    """Update hourly_event_counts for the hours that changed in events (what the automation sensor runs)."""
    from lake_pipeline.definitions import defs
    from lake_pipeline.tables.lake import Lake

    started = time.perf_counter()
    settings = command_settings(lake=lake)
    try:
        if not Lake.from_settings(settings).exists(EVENTS_TABLE):
            click.echo(f"nothing to do: no events table in {settings.lake_uri}")
            return
    except StorageError as exc:
        fail(str(exc))
    result = defs().resolve_job_def("hourly_event_counts_job").execute_in_process(
        run_config=lake_run_config(settings),
        instance=open_instance(),
        raise_on_error=False,
        tags={"lake/trigger": "cli"},
    )
    if not result.success:
        fail(run_error(result))
    meta = materialization_metadata(result, "hourly_event_counts")
    click.echo(
        f"hourly_event_counts: events v{meta['previous_events_version']} -> v{meta['events_version']} "
        f"({meta['reason']}): {meta['hours_recomputed']} hour(s) recomputed, {meta['rows_written']} row(s) written"
    )
    ok = True
    for name, passed, description in check_evaluations(result):
        # The freshness check warns on old data (e.g. the demo's fixed hours); only the counts must agree.
        mark = click.style("passed", fg="green") if passed else click.style("warning" if "fresh" in name else "FAILED", fg="yellow" if "fresh" in name else "red")
        click.echo(f"check {name}: {mark} - {description}")
        ok = ok and (passed or "fresh" in name)
    if not ok:
        fail("hourly_event_counts disagrees with events", code=1)
    click.echo(f"seconds={time.perf_counter() - started:.2f} run_id={result.run_id}")
