"""`lake`: the command line of the event lakehouse.

One module per command group: data.py (generate, query), ingest.py (ingest, backfill),
maintenance.py (compact, marts), aws.py (emulator, bootstrap, produce); common.py holds
what they share.
"""

from __future__ import annotations

import sys
import threading
import traceback

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
        timer = threading.Timer(after, _print_stacks, args=(after,))
        timer.daemon = True  # never keeps the process alive
        timer.start()
    main()


def _print_stacks(after: float) -> None:
    """Every thread's Python stack to stderr. Runs in a Python thread, holding the GIL, so the frames it
    reads stand still. (faulthandler.dump_traceback_later reads them from a C thread without the GIL, and
    CI saw it crash a process with SIGSEGV while the main thread was importing.)"""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = [f"lake: still running after {after:g} s; every thread's stack (most recent call last):\n"]
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue  # this timer's own thread
        lines.append(f"\nThread {names.get(ident, ident)}:\n")
        lines.extend(traceback.format_stack(frame))
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


if __name__ == "__main__":
    run()
