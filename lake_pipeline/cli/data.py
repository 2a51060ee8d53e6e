"""`lake generate` and `lake query`: a synthetic landing zone, and DuckDB SQL over the lake."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from lake_pipeline.cli.common import fail
from lake_pipeline.settings import load_settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import open_storage


# --start -2h: two hours before the start of the current UTC hour (+1h: the next hour).
_RELATIVE_HOUR = re.compile(r"^([+-])(\d+)h$")


def arrival_start(value: str | None, span_seconds: int, now: datetime) -> datetime:
    """Where ``lake generate``'s arrival span starts.

    No ``--start``: the span ends ``now``, so no key is stamped later than now. ``-Nh``/``+Nh``: N
    whole hours before/after the start of the current UTC hour (``--start -2h --hours 1`` is the
    hour before last). Otherwise an ISO 8601 time, UTC unless it says otherwise.
    """
    if not value:
        return now - timedelta(seconds=span_seconds)
    relative = _RELATIVE_HOUR.match(value.strip())
    if relative:
        hours = int(relative.group(2)) * (1 if relative.group(1) == "+" else -1)
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--start {value!r} is neither a time like 2025-11-20T13 nor hours from now like -2h")
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@click.command()
@click.option("--out", "out", required=True, help="Landing zone URI: a directory or s3://bucket/prefix.")
@click.option("--events", type=int, required=True, help="Unique events to generate.")
@click.option("--duplicates", type=float, default=0.05, show_default=True, help="Share of events sent twice.")
@click.option("--malformed", type=float, default=0.01, show_default=True, help="Share of extra malformed records.")
@click.option("--late", type=float, default=0.02, show_default=True, help="Share of events created hours to days earlier.")
@click.option("--redeliver", type=float, default=0.0, show_default=True,
              help="Share of records already in the landing zone to deliver again (cross-batch duplicates).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", default=None,
              help="Start of the arrival span: ISO 8601 (UTC), or -Nh/+Nh whole hours from the current UTC hour "
                   "(default: the span ends now; keys later than now only when asked).")
@click.option("--hours", type=float, default=1.0, show_default=True, help="Arrival span in hours.")
@click.option("--object-seconds", type=int, default=60, show_default=True, help="Arrival seconds per object.")
@click.option("--stream", default="events", show_default=True, help="Delivery stream name used in object keys.")
def generate(out, events, duplicates, malformed, late, redeliver, seed, start, hours, object_seconds, stream):
    """Write a synthetic Firehose landing zone (gzip, concatenated JSON, Firehose keys)."""
    from tqdm import tqdm

    from lake_pipeline.devtools.synthetic import generate as run_generate
    from lake_pipeline.devtools.synthetic import sample_records

    now = datetime.now(UTC)
    span_seconds = int(hours * 3600)
    first = arrival_start(start, span_seconds, now)
    storage = open_storage(out)
    again = sample_records(storage, redeliver, seed=seed + 1) if redeliver > 0 else None
    with tqdm(total=events, unit="ev", unit_scale=True, desc="generate", disable=events < 50_000) as bar:
        try:
            res = run_generate(
                storage, events, start=first, duplicates=duplicates, malformed=malformed, late=late,
                seed=seed, object_seconds=object_seconds, span_seconds=span_seconds, stream=stream,
                redeliver=again, progress=bar.update,
            )
        except StorageError as exc:
            fail(str(exc))
    click.echo(
        f"wrote {res.objects} objects to {storage.uri}: {res.records} records = {res.events} events "
        f"+ {res.duplicates} duplicates + {res.redelivered} redelivered + {res.malformed} malformed "
        f"({res.late} late)"
    )
    last = first + timedelta(seconds=span_seconds)  # no key is stamped later than the span's end
    if last > now:
        click.echo(f"note: as asked (--start {start}), keys up to {last:%Y-%m-%dT%H:%M:%S}Z are stamped "
                   f"after now ({now:%H:%M:%S}Z)", err=True)



@click.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--max-rows", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.argument("sql")
def query(lake, max_rows, fmt, sql):
    """Run DuckDB SQL over the lake. Views: events, quarantine, ingest_ledger, hourly_event_counts."""
    from lake_pipeline.tables.query import run_query

    settings = load_settings(lake_uri=lake)
    try:
        relation_text = run_query(settings, sql, max_rows=max_rows, fmt=fmt)
    except StorageError as exc:
        fail(str(exc))
    except Exception as exc:  # DuckDB parser/binder errors: show them plainly
        fail(str(exc).strip(), code=1)
    click.echo(relation_text)
