"""`lake`: the command line of the event lakehouse.

One module per command group: data.py (generate, query), ingest.py (ingest, backfill),
maintenance.py (compact, marts), aws.py (emulator, bootstrap, produce); common.py holds
what they share.
"""

from __future__ import annotations

import faulthandler

import click

from lake_pipeline.cli import aws, data, ingest, maintenance, serve
from lake_pipeline.cli.common import STANDALONE, fail
from lake_pipeline.settings import dump_stacks_after, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Event lakehouse: Firehose landing zone → Dagster → Delta Lake."""
    try:
        load_settings()  # a bad LAKE_* variable: one line naming it, before any work
    except ValueError as exc:
        fail(str(exc))


for command in (data.generate, ingest.ingest, ingest.backfill, data.query, maintenance.compact, maintenance.marts,
                maintenance.index, aws.emulator, aws.bootstrap, aws.produce, serve.serve):
    main.add_command(command)


def run() -> None:
    """The `lake` console command (``main`` itself is also driven in-process by tests)."""
    STANDALONE["on"] = True
    try:
        after = dump_stacks_after()
    except ValueError as exc:
        fail(str(exc))
    if after is not None:
        faulthandler.dump_traceback_later(after)  # every thread's stack to stderr, once, if still running
    main()


if __name__ == "__main__":
    run()
