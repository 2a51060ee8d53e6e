"""Storage addressed by URI: a local directory or ``s3://bucket/prefix``.

One interface for every component (sensor listing, raw reads, the generator,
Delta tables and queries). AWS clients honour the standard environment
(``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, the credentials
chain), so the same code runs against a moto server or real S3.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(message: str) -> str:
    """A message on one line: object_store's multi-line, coloured error chains joined with ": "."""
    text = _ANSI.sub("", message)
    parts = [p.strip(" \t\u21b3") for p in text.splitlines()]
    return ": ".join(p for p in parts if p)


class StorageError(RuntimeError):
    """Storage is unusable (missing, unreachable, bad credentials). The message says what to fix.

    The message is always one line, so the CLI can print it as one ``error:`` line.
    """

    def __init__(self, message: str):
        super().__init__(one_line(str(message)))


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the storage root, "/"-separated
    size: int


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://") or uri.startswith("s3a://")


def normalize_uri(uri: str) -> str:
    """Absolute local path, or the s3 URI without a trailing slash."""
    if is_s3(uri):
        return "s3://" + uri.split("://", 1)[1].rstrip("/")
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    return str(Path(uri).expanduser().resolve())


def join(uri: str, *parts: str) -> str:
    base = normalize_uri(uri)
    rel = "/".join(p.strip("/") for p in parts if p)
    return f"{base}/{rel}" if rel else base


class Storage:
    """Base interface; use :func:`open_storage`."""

    uri: str

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def check_readable(self) -> None:
        """Raise StorageError with an actionable message when the root can't be listed."""
        raise NotImplementedError


class LocalStorage(Storage):
    def __init__(self, uri: str):
        self.uri = normalize_uri(uri)
        self.root = Path(self.uri)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                found.append(ObjectInfo(path.relative_to(self.root).as_posix(), path.stat().st_size))
        found.sort(key=lambda o: o.key)
        yield from found

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"raw object {self.root / key} disappeared while reading") from exc
        except PermissionError as exc:
            raise StorageError(f"no permission to read {self.root / key}: fix the file permissions") from exc

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def exists(self) -> bool:
        return self.root.is_dir()

    def check_readable(self) -> None:
        if not self.root.exists():
            raise StorageError(f"{self.uri} does not exist: create it or pass the right path/URI")
        if not self.root.is_dir():
            raise StorageError(f"{self.uri} is not a directory: pass a directory or an s3:// URI")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StorageError(f"{self.uri} is not readable: fix its permissions")

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.uri}: {exc.strerror}; choose a writable location") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"{self.uri} is not writable: fix its permissions or choose another --lake")


class S3Storage(Storage):
    """``s3://bucket/prefix`` through boto3: paginated listing, whole-object reads and writes.

    The client comes from :func:`lake_pipeline.lake.aws.s3_client` (standard AWS environment,
    botocore retries), unless one is given (the landing sensor passes dagster-aws's).
    """

    def __init__(self, uri: str, client: Any | None = None):
        self.uri = normalize_uri(uri)
        parsed = urlparse(self.uri)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        # Keys under the root: "prefix/" (so s3://b/raw never lists s3://b/raw-old/...), or "" at the bucket root.
        self._root = f"{self.prefix}/" if self.prefix else ""
        if client is not None:
            self.__dict__["client"] = client

    @cached_property
    def client(self):
        from lake_pipeline.lake.aws import s3_client

        return s3_client()

    def _full(self, key: str) -> str:
        return self._root + key.lstrip("/")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from lake_pipeline.lake.aws import storage_errors

        strip = len(self._root)
        with storage_errors(f"s3://{self.bucket}/{self._full(prefix)}" if prefix else self.uri):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._full(prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):  # "folder" placeholders hold no records
                        continue
                    yield ObjectInfo(obj["Key"][strip:], int(obj["Size"]))

    def read(self, key: str) -> bytes:
        from lake_pipeline.lake.aws import storage_errors

        with storage_errors(f"s3://{self.bucket}/{self._full(key)}"):
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        from lake_pipeline.lake.aws import storage_errors

        with storage_errors(f"s3://{self.bucket}/{self._full(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def exists(self) -> bool:
        try:
            self.check_readable()
        except StorageError:
            return False
        return True

    def check_readable(self) -> None:
        from lake_pipeline.lake.aws import storage_errors

        with storage_errors(self.uri):
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)

    def check_writable(self) -> None:
        # Listing proves the bucket exists and the credentials work; a missing write
        # permission surfaces as a StorageError at the first commit.
        self.check_readable()


def open_storage(uri: str, s3_client: Any | None = None) -> Storage:
    """The storage at ``uri``. ``s3_client``: a boto3 S3 client to use for ``s3://`` URIs."""
    return S3Storage(uri, s3_client) if is_s3(uri) else LocalStorage(uri)
