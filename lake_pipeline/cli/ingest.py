"""`lake ingest` and `lake backfill`: the very Dagster job the landing sensor triggers (`ingest_job`),
run in-process against the instance in DAGSTER_HOME, so every CLI batch shows up in the UI."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import click

from lake_pipeline.cli.common import (
    command_settings,
    dagster_loaded,
    done,
    fail,
    instance as open_instance,
    lake_run_config,
    loading_dagster,
    run_error,
)
from lake_pipeline.settings import ENGINES, load_settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import open_storage


def _ingest_definitions(partitions, chunk_parser=None):
    """Just what `ingest_job` needs (landing + curated assets on the arrival-hour ``partitions``,
    the hourly mart, their checks, the lake resource, and ``chunk_parser``: the ChunkParser that
    began parsing the first batch, or None).

    The same definitions as the code location's, without loading the whole defs folder and
    every installed Dagster plugin (which costs seconds per command).
    """
    import dagster as dg

    from lake_pipeline.defs.curated import assets, checks
    from lake_pipeline.defs.landing import assets as landing
    from lake_pipeline.defs.marts import assets as marts
    from lake_pipeline.defs.resources import LakeResource

    return dg.Definitions(
        assets=[assets.ingest_batch_asset(partitions), landing.raw_landing_zone(partitions), marts.hourly_event_counts],
        asset_checks=[v for m in (checks, marts) for v in vars(m).values() if isinstance(v, dg.AssetChecksDefinition)],
        jobs=[assets.ingest_job],
        resources={"lake": LakeResource.from_settings(load_settings()),
                   "chunk_parser": dg.ResourceDefinition.hardcoded_resource(chunk_parser)},
    )


# Counts of `lake ingest`'s and `lake backfill`'s last line (tests parse them).
COUNTS = ("objects", "records", "inserted", "duplicates", "quarantined")


def _add_counts(totals: dict, metadata) -> None:
    """Add one run's `events` materialization metadata to ``totals``."""
    for k in COUNTS:
        totals[k] += int(metadata[k].value)
    totals["batch_seconds"] += float(metadata["batch_seconds"].value)
    if "dedupe_source" in metadata and "events" in metadata["dedupe_source"].value:
        totals["dedupe_from_events"] = True


def summary_line(totals: dict, process_seconds: float) -> str:
    """The counts, then two throughputs, each under one name wherever it appears: ``process_*`` for
    this whole process (start-up, listing and Dagster's bookkeeping included), ``batch_*`` for the
    batches' stages alone (the UI shows the same two ``batch_*`` figures on each materialization)."""

    def per_second(seconds: float) -> str:
        return f"{totals['records'] / seconds:.0f}" if seconds > 0 else "0"

    return (" ".join(f"{k}={totals[k]}" for k in COUNTS)
            + f" process_seconds={process_seconds:.2f} process_records_per_second={per_second(process_seconds)}"
            + f" batch_seconds={totals['batch_seconds']:.2f}"
            + f" batch_records_per_second={per_second(totals['batch_seconds'])}")


def _mart_line(mart: dict) -> str:
    """What the batches' runs did to hourly_event_counts (printed before the counts line)."""
    return (f"hourly_event_counts: {mart['updates']} update(s) ({', '.join(sorted(mart['modes']))}), "
            f"{mart['hours']} hour(s) updated, mart_seconds={mart['seconds']:.2f}")


def _add_mart(mart: dict, result) -> None:
    for m in result.asset_materializations_for_node("hourly_event_counts"):
        mart["updates"] += 1
        mart["modes"].add(str(m.metadata["mode"].value))
        mart["hours"] += int(m.metadata["hours_recomputed"].value)
        mart["seconds"] += float(m.metadata["update_seconds"].value)


def first_chunks(settings, batch) -> list:
    """The chunks of ``batch`` worth parsing ahead (while Dagster loads, or the batch before
    finishes): its first ones, when the batch is big enough to parse on every core."""
    from lake_pipeline.ingest.landing import chunk_objects
    from lake_pipeline.parse.reader import PARALLEL_MIN_BYTES, PREFETCH_CHUNKS

    if sum(o.size for o in batch) < PARALLEL_MIN_BYTES:
        return []
    return chunk_objects(batch, settings.chunk_max_bytes)[:PREFETCH_CHUNKS]


def _run_batches(settings, batches, instance, job, partitions, echo=True, mart=True, parser=None):
    """Run each batch as one Dagster run of ingest_job (without the mart unless ``mart``); return
    the summed metadata (the mart's under "mart"). ``parser`` (the job's ChunkParser) is told
    each next batch's first chunks, which it parses while the batch before it finishes."""
    from tqdm import tqdm

    from lake_pipeline.defs.shared import EVENTS, QUARANTINE, batch_run_tags

    totals = dict.fromkeys(COUNTS, 0) | {"batch_seconds": 0.0,
                                         "mart": {"updates": 0, "modes": set(), "hours": 0, "seconds": 0.0}}
    # The bar counts the objects this process ingested: batches another process claimed first
    # don't move it, and a bar that moved not at all is cleared at the end.
    with tqdm(total=sum(len(b) for b in batches), unit="obj", desc="ingest", disable=not echo) as bar:
        for i, batch in enumerate(batches):
            keys = [o.key for o in batch]
            if parser is not None:
                parser.expect(first_chunks(settings, batches[i + 1]) if i + 1 < len(batches) else [])
            result = job.execute_in_process(
                run_config=lake_run_config(
                    settings, ingest_batch={"config": {"source_keys": keys, "source_sizes": [o.size for o in batch]}}
                ),
                instance=instance,
                raise_on_error=False,
                tags={"lake/objects": str(len(keys)), "lake/trigger": "cli", "lake/host": socket.gethostname(),
                      **batch_run_tags(keys, partitions)},
                asset_selection=None if mart else [EVENTS, QUARANTINE],
            )
            if not result.success:
                fail(run_error(result))
            for mat in result.asset_materializations_for_node("ingest_batch"):
                if mat.asset_key.to_user_string() == "events":  # once per partition: same metadata
                    _add_counts(totals, mat.metadata)
                    bar.update(int(mat.metadata["objects"].value))
                    break
            _add_mart(totals["mart"], result)
        bar.leave = totals["objects"] > 0
    return totals


@click.command()
@click.option("--raw", default=None, help="Landing zone URI (default: LAKE_RAW_URI or data/raw).")
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Who runs the batches: this process (local) or a Ray cluster (ray, at LAKE_RAY_ADDRESS); "
                   "default: LAKE_ENGINE or local.")
@click.option("--no-mart", is_flag=True, help="Leave hourly_event_counts as it is (`lake marts` updates it later).")
def ingest(raw, lake, quiet, engine, no_mart):
    """Ingest every raw object not yet in the lake's ledger, in bounded micro-batches; each batch's
    run then adds the batch to hourly_event_counts (unless --no-mart)."""
    from lake_pipeline.engines.run import chunk_parser
    from lake_pipeline.ingest.landing import list_pending, plan_batches
    from lake_pipeline.ingest.ledger import unfinished_plans
    from lake_pipeline.tables.lake import Lake

    loading_dagster()
    started = time.perf_counter()
    settings = command_settings(raw, lake).with_overrides(engine=engine)
    try:
        open_storage(settings.raw_uri).check_readable()
        lake_ = Lake.from_settings(settings)
        lake_.check_writable()
        looking = lake_.pinned()  # these two only read the ledger and the plans: one open each
        pending = list_pending(settings, looking)
        recover = unfinished_plans(looking)
    except StorageError as exc:
        fail(str(exc))
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes)
    if not batches and recover:
        batches = [[]]  # one run to finish the crashed batch
    if not batches:
        click.echo(f"nothing to ingest: every object in {settings.raw_uri} is already in the ledger")
        return
    click.echo(f"{len(pending)} new object(s) in {settings.raw_uri} -> {len(batches)} batch(es) into {settings.lake_uri}")
    parser = chunk_parser(settings)
    for chunk in first_chunks(settings, batches[0]):
        # The first chunks are parsed while Dagster loads (one core is free); the run picks them up.
        parser.prefetch(chunk)
    from lake_pipeline.defs.shared import arrival_hours

    instance = open_instance()
    partitions = arrival_hours(settings)
    job = _ingest_definitions(partitions, parser).resolve_job_def("ingest_job")
    dagster_loaded()
    totals = _run_batches(settings, batches, instance, job, partitions, echo=not quiet, mart=not no_mart,
                          parser=parser)
    if totals["mart"]["updates"]:
        click.echo(_mart_line(totals["mart"]))
    if totals["objects"] == 0:  # another `lake ingest` (or the sensor's run) claimed them between listing and run
        click.echo(f"nothing to ingest: another ingest claimed the {len(pending)} new object(s) in "
                   f"{settings.raw_uri} first")
    else:
        click.echo(summary_line(totals, time.perf_counter() - started))
    if totals.get("dedupe_from_events"):
        click.echo("note: this lake has no seen-keys index yet, so dedupe read the events partitions; "
                   "`lake index build` builds it (one pass, resumable)", err=True)
    worker_processes = parser.worker_processes_started
    parser.close()
    done(worker_processes)


def _hour(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an hour like 2025-11-20T13") from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(minute=0, second=0, microsecond=0)


def _backfill_hours(settings, partitions, first: datetime, last: datetime, start: str, end: str) -> list[str]:
    """The partition keys of arrival hours ``first``..``last``, from the first partition on.

    With LAKE_ARRIVAL_PARTITIONS_START set, hours before it may hold objects that no partition
    names: refused. Otherwise the partitions start at the landing zone's first hour, so the
    hours before it hold nothing and are left out (an empty list: nothing landed in the range).
    """
    import dagster as dg

    fmt = partitions.fmt
    if first < partitions.start and settings.arrival_start_hour() is not None:
        fail(f"--start {start} is before the first arrival-hour partition ({partitions.start:%Y-%m-%dT%H}, "
             "LAKE_ARRIVAL_PARTITIONS_START); use `lake ingest` for older objects", code=2)
    first = max(first, partitions.start)
    if last < first:
        return []
    return partitions.get_partition_keys_in_range(dg.PartitionKeyRange(first.strftime(fmt), last.strftime(fmt)))


def _record_backfill(instance, defs, backfill_id: str, hours: list[str], tags: dict, run_config: dict,
                     rebuild: bool, success: bool) -> None:
    """The backfill as the UI's Backfills page shows it, with the one run the CLI executed."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill

    from lake_pipeline.defs.shared import EVENTS, QUARANTINE

    record = PartitionBackfill.from_asset_partitions(
        backfill_id=backfill_id,
        asset_graph=defs.resolve_asset_graph(),
        partition_names=hours,
        asset_selection=[EVENTS, QUARANTINE],
        backfill_timestamp=time.time(),
        tags={k: v for k, v in tags.items() if not k.startswith("dagster/")},
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=f"{'rebuild' if rebuild else 'backfill'} {hours[0]}..{hours[-1]}",
        description="lake backfill (single run, executed by the CLI)",
        run_config=run_config,
    )
    status = BulkActionStatus.COMPLETED_SUCCESS if success else BulkActionStatus.COMPLETED_FAILED
    instance.add_backfill(record.with_status(status))


@click.command()
@click.option("--raw", default=None, help="Landing zone URI (default: LAKE_RAW_URI or data/raw).")
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--start", "start", required=True, help="First arrival hour, e.g. 2025-11-20T00 (UTC).")
@click.option("--end", "end", required=True, help="Last arrival hour, inclusive, e.g. 2025-11-20T23.")
@click.option("--rebuild", is_flag=True, help="Replace everything that came from these hours (after a logic change).")
def backfill(raw, lake, start, end, rebuild):
    """Backfill Firehose arrival hours as one Dagster backfill (a single run); idempotent."""
    process_started = time.perf_counter()
    loading_dagster()
    from dagster._core.utils import make_new_backfill_id

    from lake_pipeline.defs.shared import EVENTS, arrival_hours
    from lake_pipeline.engines.run import chunk_parser
    from lake_pipeline.tables.lake import Lake

    first, last = _hour(start), _hour(end)
    if last < first:
        fail(f"--end {end} is before --start {start}", code=2)
    settings = command_settings(raw, lake)
    try:
        open_storage(settings.raw_uri).check_readable()
        Lake.from_settings(settings).check_writable()
    except StorageError as exc:
        fail(str(exc))
    partitions = arrival_hours(settings)
    hours = _backfill_hours(settings, partitions, first, last, start, end)
    if not hours:
        click.echo(f"nothing to backfill: no object landed in {settings.raw_uri} before "
                   f"{partitions.start:%Y-%m-%dT%H}, its first arrival hour")
        return
    instance = open_instance()
    parser = chunk_parser(settings)
    defs = _ingest_definitions(partitions, parser)
    job = defs.resolve_job_def("ingest_job")
    dagster_loaded()
    backfill_id = make_new_backfill_id()
    tags = {
        "dagster/backfill": backfill_id,
        "dagster/asset_partition_range_start": hours[0],
        "dagster/asset_partition_range_end": hours[-1],
        "lake/trigger": "cli",
        "lake/host": socket.gethostname(),
        "lake/rebuild": str(rebuild).lower(),
    }
    run_config = lake_run_config(settings, ingest_batch={"config": {"rebuild": rebuild}})
    click.echo(f"backfill {backfill_id}: {len(hours)} arrival hour(s) {hours[0]}..{hours[-1]}"
               f"{' (rebuild)' if rebuild else ''}")
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False, tags=tags)
    _record_backfill(instance, defs, backfill_id, hours, tags, run_config, rebuild, result.success)
    if not result.success:
        fail(run_error(result))
    totals = dict.fromkeys(COUNTS, 0) | {"batch_seconds": 0.0}
    for mat in result.asset_materializations_for_node("ingest_batch"):
        if mat.asset_key == EVENTS:  # once per partition, all with the run's metadata: take one
            _add_counts(totals, mat.metadata)
            break
    mart = {"updates": 0, "modes": set(), "hours": 0, "seconds": 0.0}
    _add_mart(mart, result)
    if mart["updates"]:
        click.echo(_mart_line(mart))
    click.echo(f"{summary_line(totals, time.perf_counter() - process_started)} run={result.run_id}")
    worker_processes = parser.worker_processes_started
    parser.close()
    done(worker_processes)
