"""`lake serve`: the HTTP read path (lake_pipeline/serve/) under uvicorn. Registered in main.py."""

from __future__ import annotations

import click

from lake_pipeline.cli.common import command_settings, fail


@click.command()
@click.option("--lake", default=None, help="Lake URI (default: LAKE_URI or data/lake).")
@click.option("--raw", default=None, help="Landing zone that POSTed events go to (default: LAKE_RAW_URI or data/raw).")
@click.option("--spool", default=None, help="Spool directory of accepted POSTs (default: LAKE_SERVE_SPOOL_DIR or data/spool).")
@click.option("--stream", default=None,
              help="Kinesis stream for POSTed events instead of the raw zone (default: LAKE_SERVE_STREAM; empty: raw zone).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(lake, raw, spool, stream, host, port, log_level):
    """Serve GET/POST /analytics, GET /users/{id}/events, /healthz and /docs over HTTP."""
    import uvicorn

    from lake_pipeline.serve.app import create_app
    from lake_pipeline.settings import EVENTS_TABLE
    from lake_pipeline.storage.errors import StorageError

    settings = command_settings(raw=raw, lake=lake).with_overrides(serve_spool_dir=spool, serve_stream=stream)
    try:
        app = create_app(settings)
        service = app.state.service
        service.spool.open()  # an unusable spool directory or lake: one line, before listening
        service.lake.exists(EVENTS_TABLE)
    except StorageError as exc:
        fail(str(exc))
    click.echo(f"lake serve on http://{host}:{port} (lake {settings.lake_uri}; POSTs -> "
               f"{settings.serve_stream or settings.raw_uri} via {settings.serve_spool_dir}); docs at /docs", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, http="httptools", loop="uvloop",
                timeout_graceful_shutdown=5)
