"""The landing zone, seen from the ledger: which raw objects are pending, and how they
are cut into bounded batches and chunks. Sizes travel with the keys (``ObjectInfo``)
from the listing that found them, so a batch never lists storage again for them."""

from __future__ import annotations

from collections.abc import Iterable

from lake_pipeline.ingest import ledger
from lake_pipeline.settings import Settings
from lake_pipeline.storage.objects import ObjectInfo, Storage, open_storage
from lake_pipeline.tables.lake import Lake


def list_pending(
    settings: Settings, lake: Lake | None = None, prefixes: Iterable[str] | None = None, raw: Storage | None = None
) -> list[ObjectInfo]:
    """Raw objects (under ``prefixes``, or all) that the ledger doesn't hold, in key order."""
    lake = lake or Lake.from_settings(settings)
    raw = raw or open_storage(settings.raw_uri)
    if prefixes is None:
        objects = list(raw.list())
    else:
        objects = [o for p in prefixes for o in raw.list(p)]
    done = ledger.processed_keys(lake, [o.key for o in objects])
    return sorted((o for o in objects if o.key not in done), key=lambda o: o.key)


def plan_batches(objects: list[ObjectInfo], max_objects: int, max_bytes: int) -> list[list[ObjectInfo]]:
    """Split objects (in key order) into bounded micro-batches."""
    batches: list[list[ObjectInfo]] = []
    current: list[ObjectInfo] = []
    size = 0
    for obj in objects:
        if current and (len(current) >= max_objects or size + obj.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(obj)
        size += obj.size
    if current:
        batches.append(current)
    return batches


def chunk_objects(objects: list[ObjectInfo], max_bytes: int) -> list[list[ObjectInfo]]:
    """Contiguous chunks (key order kept) of about ``max_bytes`` raw bytes each."""
    return plan_batches(objects, max_objects=len(objects) or 1, max_bytes=max_bytes)


def objects_with_sizes(raw: Storage, keys: Iterable[str], sizes: dict[str, int]) -> list[ObjectInfo]:
    """``keys`` in key order with their sizes: from ``sizes`` (what the listing that found them
    said), listing only the hour prefixes of keys it lacks (a plan resumed after a crash,
    or a run launched with keys alone)."""
    keys = sorted(keys)
    missing = [k for k in keys if k not in sizes]
    if missing:
        wanted = set(missing)
        prefixes = sorted({k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in missing})
        sizes = {**sizes, **{o.key: o.size for p in prefixes for o in raw.list(p) if o.key in wanted}}
    return [ObjectInfo(k, sizes.get(k, 0)) for k in keys]
