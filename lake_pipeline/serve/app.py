"""The `lake serve` ASGI app (Starlette): the hourly ad analytics and per-user lookups.

Routes (their OpenAPI description is in each handler's docstring, served at
``/openapi.json`` and rendered at ``/docs``):

- ``GET /analytics?timestamp=`` and ``POST /analytics?timestamp=&user=&click|impression``
- ``GET /users/{user_id}/events?from=&to=&limit=&cursor=``
- ``GET /healthz``

Background tasks (started and stopped by the lifespan): the poller brings
:class:`~lake_pipeline.serve.hours.HourlyAnalytics` up to the newest ``events`` version every
:data:`POLL_SECONDS`; the spool's committer answers POSTs once fsynced; the flusher delivers
due spool segments every :data:`FLUSH_TICK_SECONDS`; every :data:`USERS_SECONDS` the per-user
table is synced with ``events`` and its buckets sorted when due (serve/users.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from lake_pipeline.serve.follow import hour_of
from lake_pipeline.serve.hours import HourlyAnalytics
from lake_pipeline.serve.requests import AdEvent, BadRequest, millis
from lake_pipeline.serve.spool import KinesisSink, RawZoneSink, Spool
from lake_pipeline.serve.users import UserEvents
from lake_pipeline.settings import Settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.uris import is_s3
from lake_pipeline.tables.lake import Lake

log = logging.getLogger("lake_pipeline.serve")

POLL_SECONDS = 0.2
FLUSH_TICK_SECONDS = 0.25
USERS_SECONDS = 5.0
TEXT = "text/plain; charset=utf-8"
SCHEMAS = SchemaGenerator({"openapi": "3.0.3", "info": {"title": "lake serve", "version": "1"}})

_DOCS_PAGE = """<!doctype html><html><head><title>lake serve API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"><p>The OpenAPI schema is at <a href="/openapi.json">/openapi.json</a>.</p></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>window.onload = () => { if (window.SwaggerUIBundle) SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"}); };</script>
</body></html>"""


def _bad(exc: BadRequest) -> Response:
    return Response(f"{exc}\n", status_code=400, media_type=TEXT)


def _json(value: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS), status_code=status_code,
                    media_type="application/json")


@dataclass
class Service:
    """What the handlers share: the lake, the hourly analytics, the POST spool, user lookups."""

    settings: Settings
    lake: Lake
    analytics: HourlyAnalytics
    spool: Spool
    users: UserEvents

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.time) -> Service:
        lake = Lake.from_settings(settings)
        if settings.serve_stream:
            sink = KinesisSink(settings.serve_stream)
        else:
            if is_s3(settings.raw_uri):
                log.info("raw zone on S3 without LAKE_SERVE_STREAM: POSTs go to it directly, not through Kinesis")
            sink = RawZoneSink(settings.raw_uri, settings.delivery_stream_name)
        spool = Spool(settings.serve_spool_dir, sink, settings.serve_flush_bytes, settings.serve_flush_seconds, clock)
        analytics = HourlyAnalytics(lake, settings, clock)
        users = UserEvents(lake, settings.vacuum_retention_hours, events_version=lambda: analytics.version)
        return cls(settings, lake, analytics, spool, users)


async def _every(seconds: float, work, what: str) -> None:
    """Run ``work`` in a thread every ``seconds``; an error is logged once per kind and retried."""
    last = ""
    while True:
        try:
            await asyncio.to_thread(work)
            last = ""
        except Exception as exc:  # storage hiccups must not stop the poller; the next tick retries
            if str(exc) != last:
                log.error("%s failed (retrying every %.2f s): %s", what, seconds, exc)
                last = str(exc)
        await asyncio.sleep(seconds)


def _service(request: Request) -> Service:
    return request.app.state.service


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Deliver what a previous process left, follow the lake, then run the background tasks."""
    service: Service = app.state.service
    await service.spool.start()
    await asyncio.to_thread(service.spool.flush)
    await asyncio.to_thread(service.analytics.refresh)
    tasks = [
        asyncio.create_task(_every(POLL_SECONDS, service.analytics.refresh, "following events")),
        asyncio.create_task(_every(FLUSH_TICK_SECONDS, service.spool.flush, "flushing the spool")),
        asyncio.create_task(_every(USERS_SECONDS, service.users.maintain, "keeping _user_events")),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await service.spool.stop()


async def get_analytics(request: Request) -> Response:
    """
    summary: Clicks, impressions and unique users of the UTC hour holding a timestamp
    parameters:
      - {name: timestamp, in: query, required: true, schema: {type: integer}, description: milliseconds since the epoch}
    responses:
      200: {description: "three lines: unique_users,N / clicks,N / impressions,N", content: {text/plain: {}}}
      400: {description: "a missing, non-integer or out-of-range timestamp (the body says which)"}
    """
    try:
        hour = hour_of(millis(request.query_params) / 1000)
    except BadRequest as exc:
        return _bad(exc)
    analytics = _service(request).analytics
    text = analytics.cached(hour)
    if text is None:
        text = await run_in_threadpool(analytics.answer, hour)
    return Response(text, media_type=TEXT)


async def post_analytics(request: Request) -> Response:
    """
    summary: Record an ad click or impression (answered once it is fsynced in the spool)
    parameters:
      - {name: timestamp, in: query, required: true, schema: {type: integer}, description: milliseconds since the epoch}
      - {name: user, in: query, required: true, schema: {type: string}}
      - {name: click, in: query, allowEmptyValue: true, schema: {type: string}, description: a bare flag}
      - {name: impression, in: query, allowEmptyValue: true, schema: {type: string}, description: a bare flag}
      - {name: event, in: query, schema: {type: string, enum: [click, impression]}, description: the other form}
    responses:
      204: {description: accepted; delivered to the landing path}
      400: {description: "neither or both of click/impression, no user, or a bad timestamp; nothing written"}
      503: {description: the spool cannot be written}
    """
    service = _service(request)
    try:
        event = AdEvent.from_params(request.query_params)
        record = event.record(service.settings.ad_click_event, service.settings.ad_impression_event)
    except BadRequest as exc:
        return _bad(exc)
    try:
        await service.spool.append(record)
    except StorageError as exc:
        return Response(f"{exc}\n", status_code=503, media_type=TEXT)
    return Response(status_code=204)


async def user_events(request: Request) -> Response:
    """
    summary: One user's events, newest first, paged
    parameters:
      - {name: user_id, in: path, required: true, schema: {type: string}}
      - {name: from, in: query, schema: {type: integer}, description: "milliseconds since the epoch, inclusive"}
      - {name: to, in: query, schema: {type: integer}, description: "milliseconds since the epoch, exclusive"}
      - {name: limit, in: query, schema: {type: integer, default: 100, maximum: 1000}}
      - {name: cursor, in: query, schema: {type: string}, description: next_cursor of the previous page}
    responses:
      200: {description: "user_id, events (event_uuid, event_name, created_at, event_date, payload), next_cursor", content: {application/json: {}}}
      400: {description: a bad parameter (the body says which)}
    """
    users = _service(request).users
    try:
        page = await run_in_threadpool(users.page, request.path_params["user_id"], request.query_params)
    except BadRequest as exc:
        return _bad(exc)
    return _json(page)


async def healthz(request: Request) -> Response:
    """
    summary: Liveness, the events version answered from, spool segments not yet delivered
    responses:
      200: {description: "{status, events_version, spool_segments, accepted}"}
    """
    service = _service(request)
    return _json({"status": "ok", "events_version": service.analytics.version,
                  "spool_segments": service.spool.segments(), "accepted": service.spool.accepted})


async def openapi(request: Request) -> Response:
    return _json(SCHEMAS.get_schema(routes=request.app.routes))


async def docs(request: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE)


ROUTES = [
    Route("/analytics", get_analytics, methods=["GET"]),
    Route("/analytics", post_analytics, methods=["POST"]),
    Route("/users/{user_id}/events", user_events, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/openapi.json", openapi, include_in_schema=False),
    Route("/docs", docs, include_in_schema=False),
]


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> Starlette:
    """The app over the lake of ``settings``; ``clock`` says what the current hour is (tests fix it)."""
    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.service = Service.from_settings(settings, clock)
    return app
