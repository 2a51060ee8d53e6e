"""The Ray engine: a batch's stages (ingest/batch.py) as Ray tasks on a cluster; this process commits.

    parse task per chunk of objects (ingest/landing.chunk_objects), with the same ChunkParser
      -> its quarantine rows written as a file of `quarantine`; its records split by
         bucket_of(event_uuid) into one object per bucket (num_returns: Ray moves them)
    dedupe task per bucket: the bucket's records of every chunk, in arrival order -> curate_chunk
      (enrich, then SeenKeys: first arrival wins within the bucket, earlier batches from one
      snapshot of the seen-keys index, the bucket's own range of it, or of `events` before the
      index is built) -> the bucket's index rows written as index files; the kept rows split by
      partition into one object per writer
    writer task per writer: its partitions' rows -> Parquet files in `events` (Lake.write_files)
    this process: one Delta commit per table (events, the index, quarantine) with the batch id
      as transaction id (Lake.commit_files over the files the workers wrote), then the ledger.

A uuid's copies all land in one bucket, so per-bucket first-arrival-wins is the batch's. Tasks
retry on a lost worker (``max_retries``); a retried task writes new files, and files no commit
references are left for vacuum. A crashed driver leaves a plan without ledger rows, which the
next ingest finishes (engines/run.py), as with the local engine.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from lake_pipeline.contract import EVENT_UUID, events_schema, partition_columns, QUARANTINE_SCHEMA
from lake_pipeline.ingest.batch import (
    BatchPlan,
    CuratedChunk,
    Progress,
    SeenKeys,
    commit_ledger,
    curate_chunk,
    fault,
    index_for_batch,
)
from lake_pipeline.ingest.seen_index import CREATED_DATE, INDEX_SCHEMA, SeenIndex, index_rows
from lake_pipeline.ingest.seen_index import LAYOUT as INDEX_LAYOUT
from lake_pipeline.ingest.counts import BatchCounts, BatchResult, Stopwatch
from lake_pipeline.ingest.landing import chunk_objects
from lake_pipeline.parse.reader import ChunkParser
from lake_pipeline.parse.records import RECORD_SCHEMA, ParsedRecords
from lake_pipeline.settings import DEDUPE_INDEX_TABLE, EVENTS_TABLE, QUARANTINE_TABLE, Settings
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import ObjectInfo
from lake_pipeline.tables.lake import Lake
from lake_pipeline.transforms.dedupe import bucket_of
from lake_pipeline.transforms.enrich import quarantine_frame, to_events_arrow

# Task names (a Ray worker's process title is ``ray::<name>`` while it runs one).
PARSE_TASK = "lake_parse"
DEDUPE_TASK = "lake_dedupe"
WRITE_TASK = "lake_write"
# A task whose worker process dies (killed, out of memory, node lost) is run again this many times.
MAX_RETRIES = 3
# How long to wait for a TCP connection to the cluster's address before calling it unreachable
# (ray.init itself waits minutes for a GCS that isn't there).
CONNECT_TIMEOUT_SECONDS = 5.0
_BUCKET = "__bucket"
_WRITER = "__writer"


@dataclass(frozen=True)
class BatchJob:
    """What every task of one batch needs (small; shipped with each task)."""

    lake: Lake
    raw_uri: str
    parser: str
    batch_id: int
    horizon: float
    enrich: bool
    buckets: int
    writers: int
    events_version: int | None  # the snapshot of `events` dedupe reads (None: no table yet)
    index_version: int | None  # the snapshot of the seen-keys index dedupe reads (None: read `events`)
    write_index: bool  # the dedupe tasks write the batch's index rows (the index exists, lacks the batch)
    now: datetime  # quarantined_at of the batch's quarantine rows
    write_quarantine: bool  # False when `quarantine` already holds the batch (a resumed batch)


# --- Connecting --------------------------------------------------------------------------


def _describe(address: str) -> str:
    return f"the Ray cluster at {address}" if address else "a local Ray started for this run"


def _probe(address: str) -> None:
    """Fail fast, naming the address, when nothing listens there (``host:port`` or ``ray://host:port``)."""
    target = address.removeprefix("ray://")
    if address in ("", "auto") or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot reach {_describe(address)} ({exc}); start the cluster "
                           "(ray start --head) or fix LAKE_RAY_ADDRESS") from exc


_CONNECTED: dict[str, str | None] = {"address": None}


def _joined(ray, address: str) -> bool:
    """Whether this process's Ray connection (ours or its own, e.g. a test's) serves ``address``."""
    if address in ("", "auto") or _CONNECTED["address"] == address:
        return True
    try:
        return ray.get_runtime_context().gcs_address == address
    except Exception:  # a client-mode connection has no GCS address of its own
        return False


def connect(address: str):
    """The ``ray`` module, connected to ``address`` (LAKE_RAY_ADDRESS: "" starts a local Ray,
    "auto" or "host:port" or "ray://host:port" joins one); a connection to it is reused."""
    import ray

    if ray.is_initialized():
        if _joined(ray, address):
            return ray
        ray.shutdown()
    _probe(address)
    try:
        ray.init(address=address or None, logging_level="ERROR", log_to_driver=False,
                 include_dashboard=False if not address else None)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise StorageError(f"cannot reach {_describe(address)} ({exc}); fix LAKE_RAY_ADDRESS") from exc
    _CONNECTED["address"] = address
    return ray


def cluster_size(ray) -> tuple[int, int]:
    """(alive nodes, CPUs) of the connected cluster."""
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return nodes, max(1, int(ray.cluster_resources().get("CPU", 1)))


# --- The tasks (plain functions; made remote in run_batch) ----------------------------------
# Rows travel between tasks as Arrow tables: Ray stores their buffers in its object store as they
# are and a reader maps them without a copy, where a pickled Polars frame is encoded and decoded
# (4x the CPU per 250k-row chunk, measured here).


def _shipped(frame: pl.DataFrame):
    return frame.to_arrow()


def _received(parts) -> pl.DataFrame:
    return pl.concat([pl.from_arrow(p) for p in parts], how="vertical_relaxed")


@dataclass
class ParsedGroup:
    """What a parse task returns to the driver beside its buckets: the counts of its objects
    (a ParsedRecords without records; quarantine rows as source keys only) and its quarantine files."""

    counts: ParsedRecords
    quarantine_files: list


def parse_group(job: BatchJob, objects: list[ObjectInfo]) -> tuple:
    """Parse a chunk of objects; return (ParsedGroup, the records of bucket 0, ..., bucket n-1)."""
    with ChunkParser(job.raw_uri, job.parser, workers=1) as parser:
        parsed = parser.start(objects)()
    files = []
    if job.write_quarantine and parsed.quarantine.height:
        rows = quarantine_frame(parsed.quarantine, job.batch_id, job.now)
        files = job.lake.write_files(QUARANTINE_TABLE, rows, prefix=f"batch-{job.batch_id}")
    records = parsed.records.with_columns(bucket_of(parsed.records.get_column(EVENT_UUID), job.buckets).alias(_BUCKET))
    parts = records.partition_by(_BUCKET, as_dict=True, include_key=False)
    empty = pl.DataFrame(schema=RECORD_SCHEMA)
    counts = ParsedRecords(records=empty, quarantine=parsed.quarantine.select("source_key"),
                           records_per_object=parsed.records_per_object, sizes=parsed.sizes)
    return (ParsedGroup(counts, files), *(_shipped(parts.get((b,), empty)) for b in range(job.buckets)))


def _dedupe_bucket(job: BatchJob, records: pl.DataFrame) -> tuple[CuratedChunk, dict]:
    """Enrich one bucket's records (arrival order) and drop its duplicates: the one place that reads
    what earlier batches accepted for a bucket. From the seen-keys index (the driver's snapshot), a
    bucket's keys are one range of the hash, so it reads only row groups of its own range."""
    scan = job.lake.scan(EVENTS_TABLE, job.events_version) if job.events_version is not None else None
    index = SeenIndex.open(job.lake, job.horizon, job.index_version) if job.index_version is not None else None
    seen = SeenKeys(scan, job.batch_id, job.horizon, index)
    return curate_chunk(ParsedRecords(records=records), seen, job.now, derive=job.enrich), seen.report()


@dataclass
class CuratedBucket:
    inserted: dict[str, int]
    duplicates: dict[str, int]
    event_dates: pl.DataFrame  # the distinct event_date values kept
    dedupe: dict  # SeenKeys.report(): where history came from, rows read
    index_files: list  # the bucket's index rows, written as files of the seen-keys index


def dedupe_bucket(job: BatchJob, *parts) -> tuple:
    """One bucket: its records from every chunk (in chunk order) -> (CuratedBucket, kept rows of writer 0..w-1)."""
    chunk, dedupe = _dedupe_bucket(job, _received(parts))
    kept = chunk.kept
    index_files = []
    if job.write_index and kept.height:
        rows = index_rows(kept, job.buckets).to_arrow().cast(INDEX_SCHEMA)
        index_files = job.lake.write_files(DEDUPE_INDEX_TABLE, rows, [CREATED_DATE], prefix=f"batch-{job.batch_id}",
                                           layout=INDEX_LAYOUT)
    meta = CuratedBucket(chunk.inserted_per_object, chunk.duplicates_per_object, kept.select("event_date").unique(),
                         dedupe, index_files)
    by = partition_columns(job.enrich)
    writer = (pl.struct(by).hash() % job.writers).cast(pl.Int32).alias(_WRITER)
    split = kept.with_columns(writer).partition_by(_WRITER, as_dict=True, include_key=False)
    return (meta, *(_shipped(split.get((w,), kept.clear())) for w in range(job.writers)))


def write_events(job: BatchJob, *parts) -> list:
    """A writer: the kept rows of its partitions, from every bucket -> Parquet files in `events`."""
    frame = _received(parts)
    if frame.height == 0:
        return []
    return job.lake.write_files(EVENTS_TABLE, to_events_arrow(frame), partition_columns(job.enrich),
                                prefix=f"batch-{job.batch_id}")


# --- The driver ----------------------------------------------------------------------------


def _get(ray, refs: list, settings: Settings, batch_id: int) -> list:
    """``ray.get(refs)``, with a task's StorageError raised as itself (its one line says what to fix)
    and a task lost beyond its retries as one StorageError naming the cluster."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, StorageError):
            raise exc.cause from None
        raise
    except ray.exceptions.RayError as exc:
        raise StorageError(f"{_describe(settings.ray_address)} lost a task of batch {batch_id} after "
                           f"{MAX_RETRIES} retries ({type(exc).__name__}); check the cluster, then run ingest "
                           "again to finish the batch") from exc


def run_batch(
    settings: Settings,
    lake: Lake,
    plan: BatchPlan,
    parser: ChunkParser | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Process one planned batch on the Ray cluster of ``settings.ray_address``. Safe to repeat, as
    the local engine's: every commit is idempotent per batch id. ``parser`` is not used (each parse
    task has its own); it is accepted so both engines take the same arguments."""
    ray = connect(settings.ray_address)
    clock = Stopwatch()
    counts = BatchCounts(plan.keys)
    job = _job(settings, lake, plan, ray)
    groups = chunk_objects(list(plan.objects), settings.chunk_max_bytes)
    events_done = lake.batch_committed(EVENTS_TABLE, plan.batch_id)
    clock.lap("plan")

    parsed, buckets, writes = _submit(ray, job, groups, write=not events_done)
    tasks = len(parsed) + len(buckets) + len(writes)
    quarantine_files = []
    for i, group in enumerate(_get(ray, [p[0] for p in parsed], settings, plan.batch_id)):
        counts.add_parsed(group.counts)
        quarantine_files.extend(group.quarantine_files)
        if progress:
            progress(f"parsed chunk {i + 1}/{len(groups)}", sum(group.counts.sizes.values()))
    del parsed  # the driver's references: the buckets' objects are freed once deduplicated
    clock.lap("read_parse")
    fault(settings, "after_parse")
    index_files, dedupe = [], {"dedupe_source": "index" if job.index_version is not None else "events",
                               "dedupe_rows_read": 0, "dedupe_key_file_rows_read": 0, "late_beyond_index": 0}
    for bucket in _get(ray, [d[0] for d in buckets], settings, plan.batch_id):
        counts.add_curated(bucket.inserted, bucket.duplicates, bucket.event_dates)
        index_files.extend(bucket.index_files)
        for name in ("dedupe_rows_read", "dedupe_key_file_rows_read", "late_beyond_index"):
            dedupe[name] += bucket.dedupe[name]
    del buckets
    clock.lap("curate")
    files = [a for actions in _get(ray, writes, settings, plan.batch_id) for a in actions]
    _commit(settings, lake, plan, None if events_done else files, index_files if job.write_index else None,
            quarantine_files, counts, run_id, clock)
    nodes, _ = cluster_size(ray)
    result = counts.result(plan.batch_id, plan.resumed, clock, dedupe)
    result.engine, result.tasks, result.nodes = "ray", tasks, nodes
    return result


def _submit(ray, job: BatchJob, groups: list, write: bool) -> tuple[list, list, list]:
    """Submit the batch's tasks: parse per chunk, dedupe per bucket (its part of every parse's
    output), and, when ``write``, one writer per CPU (its part of every bucket's output)."""
    parse, dedupe, writer = _remote(ray)
    parsed = [parse.options(name=PARSE_TASK, num_returns=job.buckets + 1).remote(job, g) for g in groups]
    buckets = [dedupe.options(name=DEDUPE_TASK, num_returns=job.writers + 1).remote(job, *[p[b + 1] for p in parsed])
               for b in range(job.buckets)] if parsed else []
    writes = [writer.options(name=WRITE_TASK).remote(job, *[d[w + 1] for d in buckets])
              for w in range(job.writers)] if buckets and write else []
    return parsed, buckets, writes


def _commit(settings: Settings, lake: Lake, plan: BatchPlan, files: list | None, index_files: list | None,
            quarantine_files: list, counts: BatchCounts, run_id: str | None, clock: Stopwatch) -> None:
    """The driver's commits, in the local engine's order and with its fault points: `events` (unless
    ``files`` is None: it holds the batch already), the seen-keys index (unless None: it holds the
    batch, or there is none yet), `quarantine`, then the ledger."""
    metadata = {"batch_id": str(plan.batch_id), "run_id": run_id or ""}
    if files is not None:
        lake.commit_files(EVENTS_TABLE, files, batch_id=plan.batch_id, schema=events_schema(settings.enrich),
                          partition_by=partition_columns(settings.enrich), metadata=metadata)
    clock.lap("write_events")
    fault(settings, "after_events")
    if index_files:
        lake.commit_files(DEDUPE_INDEX_TABLE, index_files, batch_id=plan.batch_id, schema=INDEX_SCHEMA,
                          partition_by=[CREATED_DATE], metadata=metadata)
    clock.lap("write_index")
    fault(settings, "after_index")
    if quarantine_files:
        lake.commit_files(QUARANTINE_TABLE, quarantine_files, batch_id=plan.batch_id, schema=QUARANTINE_SCHEMA,
                          metadata=metadata)
    clock.lap("write_quarantine")
    fault(settings, "after_quarantine")
    commit_ledger(lake, plan.batch_id, counts, run_id)
    clock.lap("write_ledger")
    fault(settings, "after_ledger")


def _job(settings: Settings, lake: Lake, plan: BatchPlan, ray) -> BatchJob:
    index, writes_index = index_for_batch(lake, settings)
    snapshot = lake.table(EVENTS_TABLE)
    _, cpus = cluster_size(ray)
    return BatchJob(
        lake=lake, raw_uri=settings.raw_uri, parser=settings.parser, batch_id=plan.batch_id,
        horizon=settings.dedupe_horizon_seconds, enrich=settings.enrich,
        buckets=index.buckets if index is not None else settings.dedupe_buckets,  # the index's, fixed at creation
        writers=cpus, events_version=snapshot.version() if snapshot is not None else None,
        index_version=index.snapshot.version() if index is not None else None,
        write_index=writes_index and not lake.batch_committed(DEDUPE_INDEX_TABLE, plan.batch_id),
        now=datetime.now(UTC), write_quarantine=not lake.batch_committed(QUARANTINE_TABLE, plan.batch_id),
    )


_REMOTE: dict = {}


def _remote(ray):
    """The three tasks as Ray remote functions (made once per process)."""
    if not _REMOTE:
        remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)
        _REMOTE["tasks"] = tuple(remote(f) for f in (parse_group, dedupe_bucket, write_events))
    return _REMOTE["tasks"]
