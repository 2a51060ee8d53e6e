"""Storage addressed by URI: a local directory or ``s3://bucket/prefix``.

One interface for every component (sensor listing, raw reads, the generator,
Delta tables and queries). AWS clients honour the standard environment
(``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, the credentials
chain), so the same code runs against a moto server or real S3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lake_pipeline.storage import aws
from lake_pipeline.storage.errors import StorageError
from lake_pipeline.storage.uris import is_s3, normalize_uri

@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the storage root, "/"-separated
    size: int


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

    The client comes from :func:`lake_pipeline.storage.aws.s3_client` (standard AWS environment,
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
        return aws.s3_client()

    def _full(self, key: str) -> str:
        return self._root + key.lstrip("/")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        strip = len(self._root)
        with aws.storage_errors(f"s3://{self.bucket}/{self._full(prefix)}" if prefix else self.uri):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._full(prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):  # "folder" placeholders hold no records
                        continue
                    yield ObjectInfo(obj["Key"][strip:], int(obj["Size"]))

    def read(self, key: str) -> bytes:
        with aws.storage_errors(f"s3://{self.bucket}/{self._full(key)}"):
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        with aws.storage_errors(f"s3://{self.bucket}/{self._full(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def exists(self) -> bool:
        try:
            self.check_readable()
        except StorageError:
            return False
        return True

    def check_readable(self) -> None:
        with aws.storage_errors(self.uri):
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._root, MaxKeys=1)

    def check_writable(self) -> None:
        # Listing proves the bucket exists and the credentials work; a missing write
        # permission surfaces as a StorageError at the first commit.
        self.check_readable()


def open_storage(uri: str, s3_client: Any | None = None) -> Storage:
    """The storage at ``uri``. ``s3_client``: a boto3 S3 client to use for ``s3://`` URIs."""
    return S3Storage(uri, s3_client) if is_s3(uri) else LocalStorage(uri)
