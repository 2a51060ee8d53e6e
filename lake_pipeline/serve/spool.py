"""The POST spool: accepted events are fsynced to disk before the answer, then delivered.

**Durable before the 204.** :meth:`Spool.append` hands a record (one JSON line) to the
committer task and waits. The committer writes everything that arrived since its last
write in one ``write`` to the open segment file (``O_APPEND``) and one ``fsync``: a group
commit, so concurrent requests share an fsync, and while one fsync runs (in a thread) the
next group gathers. Only then are the waiting requests answered.

**Segments.** Each process owns a directory ``owner-<uuid>/`` under the spool root and holds
an exclusive ``flock`` on its ``owner.lock`` while it lives. Its open segment is
``<id>.open`` there, ``<id>`` being its creation time in milliseconds and a uuid. It is sealed
(renamed ``<id>.seg``) once it holds ``serve_flush_bytes`` or is ``serve_flush_seconds`` old,
like Firehose's buffer hints. A directory whose lock is free belongs to a dead process: the
next process to look (at start, then on every flush tick) moves its segments, sealed, into its
own directory and removes it, so a restart flushes what the spool holds, and several processes
(uvicorn workers, ECS tasks sharing an EFS volume) can share one spool root. A torn last line
(a write cut by a crash, never answered) is left out.

**Delivery.** :class:`RawZoneSink` writes a sealed segment to the raw zone as one
Firehose-layout object, ``YYYY/MM/dd/HH/<delivery-stream>-1-<YYYY-MM-dd-HH-mm-ss>-<uuid>.gz``,
named after the segment (its creation time and uuid) and gzipped deterministically, so a
second flush of the same segment (a crash between the object's write and the segment's
deletion) overwrites the object with the same bytes instead of adding a second one; the
ledger keeps an object it already ingested from being ingested again. :class:`KinesisSink`
sends the segment's events to a Kinesis stream with ``PutRecords`` (the producer's
packing, batching and re-sending of failed records; botocore retries whole calls). A
segment is deleted only after its delivery returned.
"""

from __future__ import annotations

import asyncio
import fcntl
import gzip
import os
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import orjson

from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.objects import LocalStorage, Storage, open_storage

OPEN, SEALED = ".open", ".seg"
LOCK = "owner.lock"


class SpoolError(StorageError):
    """The spool directory cannot be written: fix its path, permissions or free space."""


def _lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created if needed), or None when another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Segment:
    path: Path
    created: float  # epoch seconds
    uid: str
    fd: int = -1
    size: int = 0

    @classmethod
    def new(cls, directory: Path, now: float) -> Segment:
        uid = str(uuidlib.uuid4())
        path = directory / f"{int(now * 1000):013d}-{uid}{OPEN}"
        seg = cls(path, now, uid, os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644))
        _fsync_dir(directory)  # the file's name is durable before its first record is answered
        return seg

    @classmethod
    def parse(cls, path: Path) -> Segment:
        millis, uid = path.name.split(".", 1)[0].split("-", 1)
        return cls(path, int(millis) / 1000, uid)

    def records(self) -> bytes:
        """Its whole lines (a torn last line, never answered, is left out)."""
        data = self.path.read_bytes()
        return data[: data.rfind(b"\n") + 1]


class Sink(Protocol):
    name: str

    def deliver(self, segment: Segment, records: bytes) -> None: ...


class RawZoneSink:
    """One Firehose-layout object per segment in the raw zone (see the module doc)."""

    def __init__(self, raw_uri: str, delivery_stream: str, storage: Storage | None = None):
        self.storage = storage or open_storage(raw_uri)
        self.stream = delivery_stream
        self.name = raw_uri

    def key(self, segment: Segment) -> str:
        return object_key(self.stream, datetime.fromtimestamp(segment.created, UTC), ".gz", segment.uid)

    def deliver(self, segment: Segment, records: bytes) -> None:
        key = self.key(segment)
        self.storage.write(key, gzip.compress(records, mtime=0))
        if isinstance(self.storage, LocalStorage):  # durable before the segment goes
            path = self.storage.root / key
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            _fsync_dir(path.parent)


class KinesisSink:
    """The segment's events to a Kinesis stream, packed NDJSON records (devtools.producer)."""

    def __init__(self, stream: str, client=None):
        from lake_pipeline.devtools.producer import KinesisSink as Put
        from lake_pipeline.storage import aws

        self.put = Put(client or aws.client("kinesis"), stream)
        self.name = f"kinesis:{stream}"

    def deliver(self, segment: Segment, records: bytes) -> None:
        from lake_pipeline.devtools.producer import DEFAULT_PACK_BYTES, Record, produce

        lines = [line for line in records.split(b"\n") if line]
        keys = (orjson.loads(line)["event_uuid"] for line in lines)
        produce(self.put, (Record(line, key) for line, key in zip(lines, keys, strict=True)),
                pack_bytes=DEFAULT_PACK_BYTES)


class Spool:
    """Group-committed, fsynced segments of accepted records, flushed to a :class:`Sink`."""

    def __init__(self, directory: str | Path, sink: Sink, max_bytes: int, max_seconds: float,
                 clock: Callable[[], float] = time.time):
        self.root = Path(directory)
        self.dir = self.root / f"owner-{uuidlib.uuid4()}"  # this process's segments; see :meth:`open`
        self._owner_lock: int | None = None
        self.sink = sink
        self.max_bytes, self.max_seconds = max_bytes, max_seconds
        self.clock = clock
        self._segment: Segment | None = None
        self._lock = threading.Lock()  # the open segment: written, sealed and replaced under it
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.accepted = 0
        self.delivered_segments = 0

    # --- Lifecycle --------------------------------------------------------------------

    def open(self) -> None:
        """Create this process's directory under the spool root, holding its lock for the process's
        life, and adopt what dead owners left (see :meth:`adopt`)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self._owner_lock is None:
                self._owner_lock = _lock(self.dir / LOCK)
            if self._owner_lock is None:
                raise SpoolError(f"cannot lock {self.dir / LOCK}")
            _fsync_dir(self.root)
            self.adopt()
        except OSError as exc:
            raise SpoolError(f"cannot use the spool directory {self.root}: {exc.strerror}; "
                             "set LAKE_SERVE_SPOOL_DIR to a writable directory") from exc

    def close(self) -> None:
        """Release this process's directory (what it still holds is adopted by the next owner)."""
        if self._owner_lock is not None:
            os.close(self._owner_lock)
            self._owner_lock = None

    def adopt(self) -> int:
        """Move the segments of every owner directory whose lock is free (its process died: the
        lock goes with it) into ours, sealed, and remove that directory; return how many moved.
        Several servers may share a spool root (an EFS volume): each adopts a dead one's segments
        at most once, as only one of them gets its lock."""
        moved = 0
        for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            held = _lock(other / LOCK)
            if held is None:
                continue  # a live owner
            try:
                for path in sorted(other.glob(f"*{OPEN}")) + sorted(other.glob(f"*{SEALED}")):
                    path.rename(self.dir / (path.name.split(".", 1)[0] + SEALED))
                    moved += 1
                _fsync_dir(self.dir)
                (other / LOCK).unlink(missing_ok=True)
                other.rmdir()
            except OSError:
                pass  # another owner adopted it first, or a stray file: left for the next look
            finally:
                os.close(held)
        return moved

    async def start(self) -> None:
        self.open()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._committer())

    async def stop(self) -> None:
        """Answer what is pending, seal the open segment and flush everything."""
        if self._task is not None:
            while self._pending:
                await asyncio.sleep(0.005)
            self._task.cancel()
        await asyncio.to_thread(self.flush, True)
        self.close()

    # --- Accepting --------------------------------------------------------------------

    async def append(self, record: bytes) -> None:
        """Return once ``record`` (one line, no newline) is fsynced in the open segment."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(record + b"\n")
        self._waiters.append(future)
        self._wake.set()
        await future

    async def _committer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            data, waiters = b"".join(self._pending), self._waiters
            self._pending, self._waiters = [], []
            if not waiters:
                continue
            try:
                await asyncio.to_thread(self._write, data)
            except OSError as exc:
                error = SpoolError(f"cannot write the spool {self.dir}: {exc.strerror}")
                for w in waiters:
                    w.set_exception(error)
                continue
            self.accepted += len(waiters)
            for w in waiters:
                w.set_result(None)

    def _write(self, data: bytes) -> None:
        with self._lock:
            if self._segment is None:
                self._segment = Segment.new(self.dir, self.clock())
            seg = self._segment
            written = os.write(seg.fd, data)
            while written < len(data):  # a short write: the rest follows in the same group
                written += os.write(seg.fd, data[written:])
            os.fsync(seg.fd)
            seg.size += len(data)

    # --- Flushing ---------------------------------------------------------------------

    def _seal(self, force: bool) -> None:
        with self._lock:
            seg = self._segment
            if seg is None:
                return
            if not force and seg.size < self.max_bytes and self.clock() - seg.created < self.max_seconds:
                return
            os.close(seg.fd)
            seg.path.rename(seg.path.with_suffix(SEALED))
            self._segment = None

    def sealed(self) -> list[Segment]:
        return [Segment.parse(p) for p in sorted(self.dir.glob(f"*{SEALED}"))]

    def flush(self, force: bool = False) -> int:
        """Seal the open segment when due (``force``: now), deliver every sealed one, delete it;
        return how many were delivered."""
        self._seal(force)
        self.adopt()
        done = 0
        for seg in self.sealed():
            records = seg.records()
            if records:
                self.sink.deliver(seg, records)
            seg.path.unlink()
            done += 1
        if done:
            _fsync_dir(self.dir)
            self.delivered_segments += done
        return done

    def segments(self) -> int:
        return len(list(self.dir.glob(f"*{SEALED}"))) + (self._segment is not None)
