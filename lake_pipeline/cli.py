"""`lake`: generate a landing zone, ingest it through Dagster, query the tables.

`lake ingest` runs the very assets the sensor triggers (`ingest_job`), in-process,
against the Dagster instance in DAGSTER_HOME (default ./dagster_home), so every
CLI batch shows up in the UI.
"""

from __future__ import annotations

import atexit
import gc
import os
import socket
import sys
import time
from datetime import UTC, datetime

import click

from lake_pipeline.lake.storage import StorageError, normalize_uri, open_storage
from lake_pipeline.settings import dagster_home, load_settings


def _fail(message: str, code: int = 2) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + message, err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Event lakehouse: Firehose landing zone → Dagster → Delta Lake."""
    try:
        load_settings()  # a bad LAKE_* variable: one line naming it, before any work
    except ValueError as exc:
        _fail(str(exc))


_STANDALONE = {"on": False}


def run() -> None:
    """The `lake` console command (``main`` itself is also driven in-process by tests)."""
    _STANDALONE["on"] = True
    main()


def _done() -> None:
    """End a successful `lake ingest`/`lake backfill` process without interpreter teardown.

    Everything is committed and flushed by now (Delta, ledger, Dagster's run storage); the
    teardown would only free millions of Dagster objects one by one (~0.7 s).
    """
    from lake_pipeline.lake.reader import worker_processes_started

    # Not with profilers (they write at exit), nor with parse worker processes (multiprocessing
    # wants them joined and its semaphores released).
    if _STANDALONE["on"] and sys.getprofile() is None and sys.gettrace() is None and not worker_processes_started():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe (`lake ingest | head -1`): the work is done anyway
                pass
        os._exit(0)


def _loading_dagster() -> None:
    """Importing Dagster allocates millions of long-lived objects; the cyclic garbage
    collector would walk them again and again (~0.6 s of CPU per `lake ingest`). It is
    paused until :func:`_dagster_loaded`, which freezes those objects out of it."""
    gc.disable()


def _dagster_loaded() -> None:
    gc.freeze()
    gc.enable()
    # Frozen objects would outlive interpreter shutdown's collection (DuckDB's bindings
    # then report them as leaks): hand them back before exit.
    atexit.register(gc.unfreeze)


def _parse_hour(value: str | None) -> datetime:
    if not value:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        return now
    dt = datetime.fromisoformat(value)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@main.command()
@click.option("--out", "out", required=True, help="Landing zone URI: a directory or s3://bucket/prefix.")
@click.option("--events", type=int, required=True, help="Unique events to generate.")
@click.option("--duplicates", type=float, default=0.05, show_default=True, help="Share of events sent twice.")
@click.option("--malformed", type=float, default=0.01, show_default=True, help="Share of extra malformed records.")
@click.option("--late", type=float, default=0.02, show_default=True, help="Share of events created hours to days earlier.")
@click.option("--redeliver", type=float, default=0.0, show_default=True,
              help="Share of records already in the landing zone to deliver again (cross-batch duplicates).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", default=None, help="First arrival hour, ISO 8601 (default: the current UTC hour).")
@click.option("--hours", type=float, default=1.0, show_default=True, help="Arrival span in hours.")
@click.option("--object-seconds", type=int, default=60, show_default=True, help="Arrival seconds per object.")
@click.option("--stream", default="events", show_default=True, help="Delivery stream name used in object keys.")
def generate(out, events, duplicates, malformed, late, redeliver, seed, start, hours, object_seconds, stream):
    """Write a synthetic Firehose landing zone (gzip, concatenated JSON, Firehose keys)."""
    from tqdm import tqdm

    from lake_pipeline.synthetic import generate as run_generate
    from lake_pipeline.synthetic import sample_records

    storage = open_storage(out)
    again = sample_records(storage, redeliver, seed=seed + 1) if redeliver > 0 else None
    with tqdm(total=events, unit="ev", unit_scale=True, desc="generate", disable=events < 50_000) as bar:
        try:
            res = run_generate(
                storage, events, start=_parse_hour(start), duplicates=duplicates, malformed=malformed, late=late,
                seed=seed, object_seconds=object_seconds, span_seconds=int(hours * 3600), stream=stream,
                redeliver=again, progress=bar.update,
            )
        except StorageError as exc:
            _fail(str(exc))
    click.echo(
        f"wrote {res.objects} objects to {storage.uri}: {res.records} records = {res.events} events "
        f"+ {res.duplicates} duplicates + {res.redelivered} redelivered + {res.malformed} malformed "
        f"({res.late} late)"
    )


def _instance():
    from dagster import DagsterInstance

    from lake_pipeline.lake.instance import ensure_dagster_home, reap_dead_runs

    home = ensure_dagster_home(dagster_home())
    os.environ["DAGSTER_HOME"] = str(home)
    instance = DagsterInstance.get()
    for run_id in reap_dead_runs(instance):
        click.echo(f"marked run {run_id} failed: its process died before finishing (slot freed)", err=True)
    return instance


def _ingest_definitions():
    """Just what `ingest_job` needs (landing + curated assets, their checks, the lake resource).

    The same definition objects as the code location's, without loading the whole
    defs folder and every installed Dagster plugin (which costs seconds per command).
    """
    import dagster as dg

    from lake_pipeline.defs.curated import assets, checks
    from lake_pipeline.defs.landing import assets as landing
    from lake_pipeline.defs.resources import LakeResource

    def collect(module, kind):
        return [v for v in vars(module).values() if isinstance(v, kind)]

    return dg.Definitions(
        assets=collect(assets, dg.AssetsDefinition) + collect(landing, dg.AssetSpec),
        asset_checks=collect(checks, dg.AssetChecksDefinition),
        jobs=[assets.ingest_job],
        resources={"lake": LakeResource.from_settings(load_settings())},
    )


def _ingest_job():
    return _ingest_definitions().resolve_job_def("ingest_job")


def _run_batches(settings, batches, instance, job, echo=True, log_level="CRITICAL"):
    """Run each batch as one Dagster run of ingest_job; return the summed metadata."""
    from tqdm import tqdm

    totals = {k: 0 for k in ("objects", "records", "inserted", "duplicates", "quarantined")}
    from lake_pipeline.defs.curated.assets import batch_run_tags
    from lake_pipeline.defs.resources import LakeResource

    resources = {"lake": LakeResource.run_config(settings)}
    with tqdm(total=sum(len(b) for b in batches), unit="obj", desc="ingest", disable=not echo) as bar:
        for batch in batches:
            keys = [o.key for o in batch]
            result = job.execute_in_process(
                run_config={
                    "resources": resources,
                    "ops": {"ingest_batch": {"config": {"source_keys": keys}}},
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                },
                instance=instance,
                raise_on_error=False,
                tags={"lake/objects": str(len(keys)), "lake/trigger": "cli", "lake/host": socket.gethostname(),
                      **batch_run_tags(keys)},
            )
            if not result.success:
                _fail(_failure_message(result))
            for mat in result.asset_materializations_for_node("ingest_batch"):
                if mat.asset_key.to_user_string() == "events":  # once per partition: same metadata
                    for k in totals:
                        totals[k] += int(mat.metadata[k].value)
                    break
            bar.update(len(keys))
    return totals


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            while err is not None:
                if err.cls_name == "StorageError":
                    return err.message.split(": ", 1)[-1].strip()
                err = err.cause
            return f"run {result.run_id} failed: {event.step_failure_data.error.message.strip()}"
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed and getattr(data, "blocking", False):
                return f"blocking check {data.check_name} failed"
    return f"run {result.run_id} failed; see the Dagster UI (make dev) for details"


@main.command()
@click.option("--raw", default=None, help="Landing zone URI (default: LAKE_RAW_URI or data/raw).")
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(raw, lake, quiet):
    """Ingest every raw object not yet in the lake's ledger, in bounded micro-batches."""
    from lake_pipeline.lake.delta import Lake
    from lake_pipeline.lake.ingest import list_pending, plan_batches
    from lake_pipeline.lake.ledger import unfinished_plans
    from lake_pipeline.lake.ingest import chunk_objects
    from lake_pipeline.lake.reader import PARALLEL_MIN_BYTES, PREFETCH_CHUNKS, prefetch

    _loading_dagster()
    started = time.perf_counter()
    settings = load_settings(raw_uri=raw, lake_uri=lake)
    settings = settings.with_overrides(raw_uri=normalize_uri(settings.raw_uri), lake_uri=normalize_uri(settings.lake_uri))
    try:
        open_storage(settings.raw_uri).check_readable()
        lake_ = Lake.from_settings(settings)
        lake_.check_writable()
        pending = list_pending(settings, lake_)
        recover = unfinished_plans(lake_)
    except StorageError as exc:
        _fail(str(exc))
    batches = plan_batches(pending, settings.batch_max_objects, settings.batch_max_bytes)
    if not batches and recover:
        batches = [[]]  # one run to finish the crashed batch
    if not batches:
        click.echo(f"nothing to ingest: every object in {settings.raw_uri} is already in the ledger")
        return
    click.echo(f"{len(pending)} new object(s) in {settings.raw_uri} -> {len(batches)} batch(es) into {settings.lake_uri}")
    if batches and sum(o.size for o in batches[0]) >= PARALLEL_MIN_BYTES:
        # The first chunks are parsed while Dagster loads (one core is free); the run picks them up.
        for chunk in chunk_objects(batches[0], settings.chunk_max_bytes)[:PREFETCH_CHUNKS]:
            prefetch(settings.raw_uri, chunk, settings.parse_workers or None, settings.parser)
    instance = _instance()
    job = _ingest_job()
    _dagster_loaded()
    totals = _run_batches(settings, batches, instance, job, echo=not quiet)
    seconds = time.perf_counter() - started
    click.echo(
        f"objects={totals['objects']} records={totals['records']} inserted={totals['inserted']} "
        f"duplicates={totals['duplicates']} quarantined={totals['quarantined']} "
        f"seconds={seconds:.2f} events/s={totals['records'] / seconds if seconds else 0:,.0f}"
    )
    _done()




def _hour(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an hour like 2025-11-20T13") from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.replace(minute=0, second=0, microsecond=0)


@main.command()
@click.option("--raw", default=None, help="Landing zone URI (default: LAKE_RAW_URI or data/raw).")
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--start", "start", required=True, help="First arrival hour, e.g. 2025-11-20T00 (UTC).")
@click.option("--end", "end", required=True, help="Last arrival hour, inclusive, e.g. 2025-11-20T23.")
@click.option("--rebuild", is_flag=True, help="Replace everything that came from these hours (after a logic change).")
def backfill(raw, lake, start, end, rebuild):
    """Backfill Firehose arrival hours as one Dagster backfill (a single run); idempotent."""
    _loading_dagster()
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from lake_pipeline.defs.curated.assets import ARRIVAL_HOURS, EVENTS, QUARANTINE
    from lake_pipeline.defs.resources import LakeResource
    from lake_pipeline.lake.delta import Lake

    first, last = _hour(start), _hour(end)
    if last < first:
        _fail(f"--end {end} is before --start {start}", code=2)
    from lake_pipeline.settings import ARRIVAL_PARTITIONS_START

    if first < ARRIVAL_HOURS.start:
        _fail(f"--start {start} is before the first arrival-hour partition ({ARRIVAL_PARTITIONS_START}, "
              "settings.ARRIVAL_PARTITIONS_START); use `lake ingest` for older objects", code=2)
    settings = load_settings(raw_uri=raw, lake_uri=lake)
    settings = settings.with_overrides(raw_uri=normalize_uri(settings.raw_uri), lake_uri=normalize_uri(settings.lake_uri))
    try:
        open_storage(settings.raw_uri).check_readable()
        Lake.from_settings(settings).check_writable()
    except StorageError as exc:
        _fail(str(exc))
    instance = _instance()
    defs = _ingest_definitions()
    job = defs.resolve_job_def("ingest_job")
    _dagster_loaded()
    hours = ARRIVAL_HOURS.get_partition_keys_in_range(
        __import__("dagster").PartitionKeyRange(first.strftime(ARRIVAL_HOURS.fmt), last.strftime(ARRIVAL_HOURS.fmt))
    )
    backfill_id = make_new_backfill_id()
    tags = {
        "dagster/backfill": backfill_id,
        "dagster/asset_partition_range_start": hours[0],
        "dagster/asset_partition_range_end": hours[-1],
        "lake/trigger": "cli",
        "lake/host": socket.gethostname(),
        "lake/rebuild": str(rebuild).lower(),
    }
    run_config = {
        "resources": {"lake": LakeResource.run_config(settings)},
        "ops": {"ingest_batch": {"config": {"rebuild": rebuild}}},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    click.echo(f"backfill {backfill_id}: {len(hours)} arrival hour(s) {hours[0]}..{hours[-1]}"
               f"{' (rebuild)' if rebuild else ''}")
    started = time.perf_counter()
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False, tags=tags)
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
    status = BulkActionStatus.COMPLETED_SUCCESS if result.success else BulkActionStatus.COMPLETED_FAILED
    instance.add_backfill(record.with_status(status))
    if not result.success:
        _fail(_failure_message(result))
    totals = {k: 0 for k in ("objects", "records", "inserted", "duplicates", "quarantined")}
    for mat in result.asset_materializations_for_node("ingest_batch"):
        if mat.asset_key == EVENTS:
            for k in totals:
                totals[k] = int(mat.metadata[k].value)
            break
    seconds = time.perf_counter() - started
    click.echo(
        f"objects={totals['objects']} records={totals['records']} inserted={totals['inserted']} "
        f"duplicates={totals['duplicates']} quarantined={totals['quarantined']} seconds={seconds:.2f} run={result.run_id}"
    )
    _done()


@main.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--max-rows", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.argument("sql")
def query(lake, max_rows, fmt, sql):
    """Run DuckDB SQL over the lake. Views: events, quarantine, ingest_ledger, hourly_event_counts."""
    from lake_pipeline.lake.query import run_query

    settings = load_settings(lake_uri=lake)
    try:
        relation_text = run_query(settings, sql, max_rows=max_rows, fmt=fmt)
    except StorageError as exc:
        _fail(str(exc))
    except Exception as exc:  # DuckDB parser/binder errors: show them plainly
        _fail(str(exc).strip(), code=1)
    click.echo(relation_text)


# Maintenance commands (compact, marts) live in cli_ops.py.
from lake_pipeline.cli_ops import register as _register_ops  # noqa: E402

_register_ops(main)

# AWS commands (emulator, bootstrap, produce): lake_pipeline/cli_aws.py
from lake_pipeline.cli_aws import register as _register_aws  # noqa: E402

_register_aws(main)

if __name__ == "__main__":
    run()
