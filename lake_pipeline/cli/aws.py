"""AWS-specific `lake` commands: the local emulator, `bootstrap` and `produce`.

``lake emulator start|stop|status|env`` runs a moto server (S3, Kinesis, Firehose) on
127.0.0.1 (``make aws-local`` / ``make aws-local-stop``); ``lake bootstrap`` creates the
buckets and streams on it (``make bootstrap``); ``lake produce`` sends synthetic events
(``make produce``). See docs/aws-local.md.
"""

from __future__ import annotations

import sys

import click

from lake_pipeline.cli.common import fail
from lake_pipeline.devtools.emulator import DEFAULT_STATE_DIR


@click.group()
def emulator() -> None:
    """The local AWS emulator: a moto server on 127.0.0.1 (S3, Kinesis, Firehose)."""


_state_dir = click.option(
    "--state-dir", default=DEFAULT_STATE_DIR, show_default=True, help="Pidfile, log, endpoint and env file."
)


@emulator.command("start")
@_state_dir
@click.option("--port", type=int, default=None, help="Port (default: a free one).")
def emulator_start(state_dir, port):
    """Start the moto server in the background (or report the one running); print the export line."""
    from lake_pipeline.devtools import emulator as emu_mod

    already = emu_mod.running(state_dir)
    try:
        emu = already or emu_mod.start(state_dir, port=port)
    except emu_mod.EmulatorError as exc:
        fail(str(exc))
    state = "already running" if already else "started"
    click.echo(f"moto server {state} at {emu.endpoint} (pid {emu.pid}, log {emu.log})", err=True)
    click.echo(f"point your shell at it (or: source {emu.state_dir / 'env'}):", err=True)
    click.echo(emu_mod.export_line(emu.environment()))


@emulator.command("stop")
@_state_dir
def emulator_stop(state_dir):
    """Stop the moto server started by `lake emulator start`."""
    from lake_pipeline.devtools import emulator as emu_mod

    pid = emu_mod.stop(state_dir)
    click.echo(f"stopped moto server (pid {pid})" if pid else "no moto server was running")


@emulator.command("status")
@_state_dir
def emulator_status(state_dir):
    """Exit 0 when the emulator is running (and print its endpoint), 1 otherwise."""
    from lake_pipeline.devtools import emulator as emu_mod

    emu = emu_mod.running(state_dir)
    if emu is None:
        click.echo("no moto server running")
        sys.exit(1)
    click.echo(f"moto server at {emu.endpoint} (pid {emu.pid})")


@emulator.command("env")
@_state_dir
def emulator_env(state_dir):
    """Print the export line of the running emulator (eval "$(lake emulator env)")."""
    from lake_pipeline.devtools import emulator as emu_mod

    emu = emu_mod.running(state_dir)
    if emu is None:
        fail("no moto server running: start one with `make aws-local`")
    click.echo(emu_mod.export_line(emu.environment()))


@click.command()
def bootstrap():
    """Create on the emulator what Terraform creates in AWS: buckets, Kinesis stream, Firehose stream."""
    from lake_pipeline.storage import aws
    from lake_pipeline.devtools.bootstrap import BootstrapError, layout
    from lake_pipeline.devtools.bootstrap import bootstrap as run_bootstrap
    from lake_pipeline.storage.errors import StorageError
    from lake_pipeline.settings import load_settings

    settings = load_settings()
    try:
        with aws.storage_errors(aws.endpoint_url("s3") or "AWS"):
            result = run_bootstrap(settings)
    except (BootstrapError, StorageError) as exc:
        fail(str(exc))
    for name in result.created:
        click.echo(f"created  {name}")
    for name in result.existing:
        click.echo(f"exists   {name}")
    where = layout(settings)
    click.echo(f"raw landing zone: {where.raw_uri}   lake: s3://{where.lake_bucket}/lake")


@click.command()
@click.option("--events", type=int, required=True, help="Events to send.")
@click.option("--rate", type=float, default=None, help="Events per second (default: as fast as possible).")
@click.option("--target", type=click.Choice(["firehose", "kinesis"]), default="firehose", show_default=True,
              help="Firehose delivery stream (PutRecordBatch) or Kinesis stream (PutRecords). Locally only "
                   "Firehose reaches S3: moto has no Kinesis-to-Firehose delivery.")
@click.option("--stream", default=None,
              help="Stream name (default: LAKE_DELIVERY_STREAM_NAME for firehose, LAKE_STREAM_NAME for kinesis).")
@click.option("--duplicates", type=float, default=0.0, show_default=True, help="Share of events sent twice.")
@click.option("--malformed", type=float, default=0.0, show_default=True, help="Share of extra malformed records.")
@click.option("--seed", type=int, default=None, help="Random seed (default: fresh, so runs never share event_uuids).")
@click.option("--pack/--no-pack", default=True, show_default=True,
              help="Pack several events per stream record, newline-delimited, up to --pack-kib (Firehose bills "
                   "each record rounded up to 5 KiB). --no-pack sends one event per record.")
@click.option("--pack-kib", type=int, default=25, show_default=True,
              help="Size of a packed record in KiB: a multiple of 5, at most 1000.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def produce(events, rate, target, stream, duplicates, malformed, seed, pack, pack_kib, quiet):
    """Send synthetic events to Firehose or Kinesis, within the API limits, retrying failed records."""
    from tqdm import tqdm

    from lake_pipeline.storage import aws
    from lake_pipeline.devtools.producer import ProduceError, SyntheticEvents, open_sink
    from lake_pipeline.devtools.producer import produce as run_produce
    from lake_pipeline.storage.errors import StorageError
    from lake_pipeline.settings import load_settings

    if events < 0 or (rate is not None and rate <= 0):
        fail("--events must be >= 0 and --rate > 0")
    if pack and (pack_kib <= 0 or pack_kib % 5 or pack_kib > 1000):
        fail("--pack-kib must be a multiple of 5 between 5 and 1000 (Firehose bills records in 5 KiB units)")
    settings = load_settings()
    name = stream or (settings.delivery_stream_name if target == "firehose" else settings.stream_name)
    what = f"{target} stream {name}"
    source = SyntheticEvents(events, seed=seed, duplicates=duplicates, malformed=malformed)
    total = int(events * (1 + duplicates + malformed))
    try:
        with aws.storage_errors(what), tqdm(total=total, unit="rec", unit_scale=True, desc="produce",
                                            disable=quiet) as bar:
            result = run_produce(open_sink(target, name), source, rate=rate, progress=bar.update,
                                 pack_bytes=pack_kib * 1024 if pack else None)
    except (ProduceError, StorageError) as exc:
        fail(str(exc))
    made = source.produced
    packed = ""
    if pack and result.records:
        packed = (f" packed into {result.records} stream records (avg {result.bytes // result.records:,} bytes; "
                  f"Firehose bills {result.billed_bytes / max(result.bytes, 1):.2f}x the bytes)")
    click.echo(
        f"sent {result.events} records ({made['events']} events + {made['duplicates']} duplicates + "
        f"{made['malformed']} malformed) to {what}{packed} in {result.calls} calls, {result.retried} resent, "
        f"{result.oversized} over the size limit; {result.seconds:.2f}s, {result.records_per_second:,.0f} records/s"
    )
    if target == "kinesis" and aws.endpoint_url("kinesis"):
        click.echo("note: the emulator has no Kinesis-to-Firehose delivery; these records stay in the stream "
                   "(use --target firehose to reach the landing zone)", err=True)
