"""The one place configuration is read.

Every setting has an environment variable and a default that works on a laptop
with no AWS (the *embedded default*: local directories stand in for buckets).
Nothing here runs at import time; call :func:`load_settings`.

The same names are used by Terraform (``terraform/``) for the AWS deployment, and
tests parse the HCL to assert the two agree.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

# --- Names shared with the AWS deployment (terraform/ must agree; tests check) ---
PROJECT = "lakehouse"
# Firehose writes raw objects under this prefix of the raw bucket, then YYYY/MM/dd/HH/.
FIREHOSE_RAW_PREFIX = "raw/"
FIREHOSE_ERROR_PREFIX = "errors/"
# Lake layout: tables live directly under the lake URI.
EVENTS_TABLE = "events"
QUARANTINE_TABLE = "quarantine"
LEDGER_TABLE = "_ingest_ledger"
PLANS_TABLE = "_ingest_plans"
REBUILDS_TABLE = "_ingest_rebuilds"
HOURLY_COUNTS_TABLE = "hourly_event_counts"
# The mart's exact distinct-users state: one row per (event_hour, event_name, user_id) seen (marts/users.py).
HOURLY_USERS_TABLE = "_hourly_event_users"
# Each batch's events grouped as the hourly mart groups them, written by the ingest, read by the
# mart's update instead of the batch's payloads (marts/feed.py).
HOURLY_FEED_TABLE = "_hourly_feed"
# Seen-keys index of accepted events (event_uuid, created_at) that dedupe reads (ingest/seen_index.py).
DEDUPE_INDEX_TABLE = "_dedupe_index"
# Per-user copy of events (user_id from payload, partitioned by a hash bucket of it, files sorted
# by user_id) that `lake serve` keeps and reads for GET /users/{id}/events (serve/users.py).
USER_EVENTS_TABLE = "_user_events"
CATALOG_TABLES = (EVENTS_TABLE, QUARANTINE_TABLE, HOURLY_COUNTS_TABLE)
# Dagster concurrency pool that makes each batch the only writer of the lake tables.
WRITER_POOL = "lake_writer"
# Pool of the hourly marts' writer (one mart update at a time; ingest is not blocked by it).
MARTS_POOL = "lake_marts"


def bucket_names(env: str, project: str = PROJECT) -> dict[str, str]:
    """Bucket names of one deployment environment (Terraform uses the same pattern)."""
    return {
        "raw": f"{project}-{env}-raw",
        "lake": f"{project}-{env}-lake",
    }


def stream_names(env: str, project: str = PROJECT) -> dict[str, str]:
    """Kinesis stream and Firehose delivery stream names of one environment."""
    return {
        "kinesis": f"{project}-{env}-events",
        "firehose": f"{project}-{env}-events-to-raw",
    }


# --- Runtime settings ---
ENV_PREFIX = "LAKE_"


# Settings.engine: who runs a batch's stages: this process, or a Ray cluster (engines/ray.py).
ENGINES = ("local", "ray")

# Settings.parser: the bulk (DuckDB) parser with the Python parser behind it, or the Python parser alone.
PARSERS = ("duckdb", "python")


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Field ``x`` is read from env var ``LAKE_X`` (``lake_uri``: ``LAKE_URI``)."""

    # Where Firehose objects land (local dir or s3://bucket/prefix), and the lake root.
    raw_uri: str = "data/raw"
    lake_uri: str = "data/lake"
    # A record is a duplicate of an accepted one with the same event_uuid whose
    # created_at is within this many seconds.
    dedupe_horizon_seconds: float = 3600.0
    # A micro-batch (one Dagster run) holds at most this many objects / raw bytes.
    batch_max_objects: int = 500
    batch_max_bytes: int = 64 * 1024 * 1024
    # A batch streams through in chunks of about this many raw (compressed) bytes:
    # memory follows the chunk size, not the batch size.
    chunk_max_bytes: int = 16 * 1024 * 1024
    # Processes (python parser) or DuckDB threads (duckdb parser) that read and parse a
    # batch's objects (0: one per core).
    parse_workers: int = 0
    # "duckdb": DuckDB reads clean objects in bulk and hands every object it isn't sure
    # about to the Python parser (same records either way); "python": the Python parser only.
    parser: str = "duckdb"
    # Enrichment: when false, the no-transform mode keeps only the contract columns
    # computed from the record itself and skips derived columns beyond partitioning.
    enrich: bool = True
    # First Firehose arrival hour of the hourly partitions Dagster shows for the landing zone
    # (and that backfills can name), e.g. "2025-11-20T00" (UTC). Empty: the landing zone's first
    # hour, looked up when the definitions are built (one listing), or, while nothing has
    # landed, the oldest hour the landing sensor lists. Objects that arrived before it still
    # ingest (unpartitioned runs). See docs/operations.md for the partition count over years.
    arrival_partitions_start: str = ""
    # Landing sensor: hour prefixes listed on every tick (the current hour and this many
    # before it), how often (in ticks) a full catch-up listing of the landing zone is done
    # instead, and the least number of seconds between two ticks. Dagster's sensor daemon
    # looks at its sensors every 5 s, and a tick waits for the next look once this interval
    # has passed: 4 (any value up to ~4) means a tick on every look, ~5 s apart; 5 would
    # mean ~10 s. 120 ticks of ~5 s: a catch-up listing every ~10 minutes.
    sensor_lookback_hours: int = 3
    sensor_catchup_every_ticks: int = 120
    sensor_interval_seconds: int = 4
    # Firehose/Kinesis names used by `lake produce` and `make bootstrap`.
    stream_name: str = f"{PROJECT}-local-events"
    delivery_stream_name: str = f"{PROJECT}-local-events-to-raw"
    # Delta commits on S3: "conditional_put" (S3 If-None-Match; the only mode delta-rs 1.x
    # supports: "dynamodb" is refused with an explanation, see storage/aws.py).
    s3_locking: str = "conditional_put"
    dynamodb_lock_table: str = ""
    # Compaction target and vacuum retention.
    compact_target_file_bytes: int = 128 * 1024 * 1024
    vacuum_retention_hours: int = 168
    # Crash tests only: SIGKILL this process at a named point of a batch
    # (after_parse | after_events | after_index | after_feed | after_quarantine | after_ledger). Empty in production.
    fault_injection: str = ""
    # Alerts on run failure: "sns:<topic-arn>" or "https://hooks..." or "" for none.
    alert_destination: str = ""
    # Compaction: one commit rewrites at most this many bytes of small files (one event_date's
    # partitions per group), so it holds the writer pool for one short commit at a time.
    compact_group_max_bytes: int = 512 * 1024 * 1024
    # hourly_event_counts freshness check: the newest hour may end at most this many hours ago.
    mart_max_lag_hours: float = 3.0
    # Alerts: webhook timeout, and the Dagster UI base URL used to link the failed run ("" for none).
    alert_timeout_seconds: float = 10.0
    dagster_ui_url: str = ""
    # Seen-keys index (_dedupe_index): rows are hashed on event_uuid into this many buckets
    # (fixed when the index is created and recorded in its metadata; the Ray engine's shards),
    # and kept for this many days of created_at. A record older than that is deduplicated by
    # reading `events` for its hours instead (slower; counted as late_beyond_index).
    dedupe_buckets: int = 16
    dedupe_retention_days: int = 7
    # "local": this process runs the batch; "ray": a Ray cluster does (parse, dedupe per bucket,
    # file writes), this process commits. ray_address: "" starts a Ray for the run; "auto" or
    # "ray://host:port" joins an existing cluster.
    engine: str = "local"
    ray_address: str = ""
    # Serving (lake serve): the event names counted as clicks and impressions by /analytics.
    ad_click_event: str = "ad:click"
    ad_impression_event: str = "ad:impression"
    # lake serve's POST /analytics: each accepted event is fsynced into a segment of this spool
    # directory before the 204; a segment is flushed (to the raw zone as one Firehose-layout
    # object, or to the Kinesis stream serve_stream when set) once it holds serve_flush_bytes
    # or is serve_flush_seconds old, and deleted only after that.
    serve_spool_dir: str = "data/spool"
    serve_flush_bytes: int = 4 * 1024 * 1024
    serve_flush_seconds: float = 5.0
    serve_stream: str = ""

    @classmethod
    def env_var(cls, field_name: str) -> str:
        if field_name == "lake_uri":
            return "LAKE_URI"
        return ENV_PREFIX + field_name.upper()

    def __post_init__(self) -> None:
        if self.parser not in PARSERS:
            raise ValueError(f"LAKE_PARSER must be one of {', '.join(PARSERS)}, not {self.parser!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"LAKE_ENGINE must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.dedupe_buckets < 1:
            raise ValueError(f"LAKE_DEDUPE_BUCKETS must be at least 1, not {self.dedupe_buckets}")
        self.arrival_start_hour()  # a value that is not an hour fails here, naming its variable

    def arrival_start_hour(self) -> datetime | None:
        """``arrival_partitions_start`` as a UTC hour, or None when it is to be looked up."""
        if not self.arrival_partitions_start:
            return None
        try:
            dt = datetime.fromisoformat(self.arrival_partitions_start)
        except ValueError:
            raise ValueError(f"LAKE_ARRIVAL_PARTITIONS_START must be an hour like 2025-11-20T00 (UTC), "
                             f"not {self.arrival_partitions_start!r}") from None
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
        return dt.replace(minute=0, second=0, microsecond=0)

    def with_overrides(self, **overrides: object) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **clean)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


_KINDS = {int: "an integer", float: "a number"}


def _coerce(raw: str, typ: type) -> object:
    if typ is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return typ(raw)


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from the environment (``LAKE_*``), then apply explicit overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    defaults = Settings()
    for f in fields(Settings):
        name = Settings.env_var(f.name)
        if name in env and env[name] != "":
            typ = type(getattr(defaults, f.name))
            try:
                values[f.name] = _coerce(env[name], typ)
            except ValueError:
                raise ValueError(f"{name} must be {_KINDS.get(typ, typ.__name__)}, not {env[name]!r}") from None
    return Settings(**values).with_overrides(**overrides)


def env_vars_set(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Settings fields given by the environment, mapped to their variable names."""
    env = os.environ if environ is None else environ
    return {f.name: Settings.env_var(f.name) for f in fields(Settings) if env.get(Settings.env_var(f.name))}


def dagster_home(environ: dict[str, str] | None = None) -> Path:
    """DAGSTER_HOME, defaulting to ./dagster_home of the working directory."""
    env = os.environ if environ is None else environ
    return Path(env.get("DAGSTER_HOME") or "dagster_home").resolve()


def dump_stacks_after(environ: dict[str, str] | None = None) -> float | None:
    """LAKE_DUMP_STACKS_AFTER_SECONDS: a `lake` process still running after that many seconds
    prints every thread's Python stack to stderr, once (from a Python timer thread; for
    diagnosing a hang where py-spy can't read the process). Unset or empty: never."""
    env = os.environ if environ is None else environ
    raw = env.get("LAKE_DUMP_STACKS_AFTER_SECONDS", "")
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"LAKE_DUMP_STACKS_AFTER_SECONDS={raw!r} is not a number of seconds") from None
