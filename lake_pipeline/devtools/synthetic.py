"""Synthetic Firehose landing zones: realistic objects for demos, tests and benchmarks.

Objects follow Firehose's key layout and format (gzip, records concatenated with no
delimiter). Event names come from a fixed catalogue of 100 names with 1 to 4
``:``-separated parts; payloads are type-specific. A share of records can be
duplicates (within and across objects), malformed, or late.
"""

from __future__ import annotations

import gzip
import random
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import Storage
from lake_pipeline.parse.careful import decompress

_TYPES = {
    "page": ["view", "scroll", "exit"],
    "click": ["button", "link", "banner"],
    "impression": ["ad", "product", "banner"],
    "purchase": ["completed", "refunded"],
    "cart": ["add", "remove", "checkout"],
    "search": ["query", "results"],
    "video": ["play", "pause", "complete"],
    "auth": ["login", "logout", "signup"],
    "notification": ["sent", "opened"],
    "app": ["open", "crash", "background"],
}
_LEAVES = ["web", "ios", "android"]
_DETAILS = ["primary", "secondary"]


def event_names() -> list[str]:
    """The catalogue: exactly 100 event names with 1 to 4 parts."""
    one = list(_TYPES)
    two = [f"{t}:{s}" for t, subs in _TYPES.items() for s in subs]
    three = [f"{n}:{leaf}" for n in two for leaf in _LEAVES][:53]
    four = [f"{n}:{d}" for n in three[:5] for d in _DETAILS]
    names = one + two + three + four
    assert len(names) == 100 and len(set(names)) == 100
    return names


def event_payload(rng: random.Random, name: str) -> dict:
    etype = name.split(":", 1)[0]
    p: dict = {}
    if etype != "app" or rng.random() < 0.5:
        p["user_id"] = f"u{rng.randrange(50_000):06d}"
    p["session_id"] = f"s{rng.getrandbits(40):010x}"
    if etype == "page":
        p["url"] = rng.choice(["/", "/pricing", "/docs", "/blog/lakehouse", "/signup"])
        p["referrer"] = rng.choice([None, "https://example.com", "https://search.example"])
    elif etype in ("click", "impression"):
        p["element"] = rng.choice(["cta", "nav", "card", "footer"])
        p["position"] = {"x": rng.randrange(1920), "y": rng.randrange(1080)}
        p["campaign_id"] = rng.randrange(1, 500)
    elif etype in ("purchase", "cart"):
        items = [{"sku": f"SKU-{rng.randrange(10_000)}", "qty": rng.randrange(1, 4)} for _ in range(rng.randrange(1, 4))]
        p["items"] = items
        p["amount"] = round(rng.uniform(1, 500), 2)
        p["currency"] = rng.choice(["EUR", "USD", "GBP", "JPY"])
    elif etype == "search":
        p["query"] = rng.choice(["delta lake", "parquet", "café au lait", "東京", "dagster sensors"])
        p["results"] = rng.randrange(0, 200)
    elif etype == "video":
        p["video_id"] = f"v{rng.randrange(1000)}"
        p["position_s"] = round(rng.uniform(0, 3600), 3)
    elif etype == "auth":
        p["method"] = rng.choice(["password", "sso", "magic_link"])
        p["success"] = rng.random() > 0.05
    elif etype == "notification":
        p["channel"] = rng.choice(["email", "push", "sms"])
        p["template"] = f"t{rng.randrange(40)}"
    else:
        p["device"] = {"os": rng.choice(["ios", "android"]), "version": f"{rng.randrange(10, 18)}.{rng.randrange(10)}"}
    return p


def malformed_record(rng: random.Random, good: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return good[: max(2, len(good) // 2)]  # truncated record
    if kind == 1:
        return good.replace(b'"event_uuid"', b'"event_uuidX"', 1)  # missing uuid
    if kind == 2:
        return good.replace(b'"created_at":', b'"created_at":"', 1).replace(b',"', b'",', 1)[: len(good) + 1] + b"}"
    if kind == 3:
        return b'["not","an","object"]'
    if kind == 4:
        return good.replace(b'"event_name":"', b'"event_name":":', 1)  # empty event type
    return good[:-1] + b',"bad":"\xff\xfe"}'  # invalid UTF-8


@dataclass
class GenerateResult:
    objects: int = 0
    records: int = 0
    events: int = 0
    duplicates: int = 0
    malformed: int = 0
    late: int = 0
    redelivered: int = 0
    keys: list[str] = field(default_factory=list)
    records_per_object: list[int] = field(default_factory=list)


def generate(
    storage: Storage,
    events: int,
    *,
    start: datetime,
    duplicates: float = 0.05,
    malformed: float = 0.01,
    late: float = 0.02,
    seed: int = 7,
    object_seconds: int = 60,
    span_seconds: int = 3600,
    stream: str = "events",
    redeliver: list[bytes] | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write ``events`` unique events (plus duplicates and malformed records) as Firehose objects.

    Events are spread over ``span_seconds`` from ``start``; one object is cut every
    ``object_seconds`` of arrival time. ``redeliver`` holds raw records from earlier
    objects that are delivered again (cross-batch duplicates).
    """
    rng = random.Random(seed)
    names = event_names()
    start = start.astimezone(UTC)
    n_objects = max(1, span_seconds // object_seconds)
    result = GenerateResult()
    redeliver = list(redeliver or [])
    result.redelivered = len(redeliver)
    per_object = [events // n_objects + (1 if i < events % n_objects else 0) for i in range(n_objects)]
    for obj_index, count in enumerate(per_object):
        arrived = start + timedelta(seconds=(obj_index + 1) * object_seconds - rng.random())
        window_start = start.timestamp() + obj_index * object_seconds
        records: list[bytes] = []
        for _ in range(count):
            created = window_start + rng.random() * object_seconds
            if rng.random() < late:
                created -= rng.uniform(3600, 3 * 86400)  # arrives hours to days late
                result.late += 1
            name = rng.choice(names)
            rec = {
                "event_uuid": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
                "event_name": name,
                "created_at": round(created, 6) if rng.random() < 0.8 else int(created),
                **event_payload(rng, name),
            }
            line = orjson.dumps(rec)
            records.append(line)
            result.events += 1
            if rng.random() < duplicates:
                # A producer retry: the same record again, later in this object or in a later one.
                if rng.random() < 0.5 or obj_index == n_objects - 1:
                    records.append(line)
                else:
                    redeliver.append(line)
                result.duplicates += 1
            if rng.random() < malformed:
                records.append(malformed_record(rng, line))
                result.malformed += 1
        take = min(len(redeliver), max(0, len(redeliver) // max(1, n_objects - obj_index)))
        for _ in range(take):
            records.insert(rng.randrange(len(records) + 1), redeliver.pop(0))
        body = gzip.compress(b"".join(records), compresslevel=5)
        uid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        key = object_key(stream, arrived, ".gz", uid)
        storage.write(key, body)
        result.keys.append(key)
        result.records_per_object.append(len(records))
        result.objects += 1
        result.records += len(records)
        if progress:
            progress(count)
    if redeliver:  # anything left lands in one last object
        key = object_key(stream, start + timedelta(seconds=span_seconds), ".gz", str(uuidlib.UUID(int=rng.getrandbits(128), version=4)))
        storage.write(key, gzip.compress(b"".join(redeliver)))
        result.keys.append(key)
        result.records_per_object.append(len(redeliver))
        result.objects += 1
        result.records += len(redeliver)
    return result


def sample_records(storage: Storage, share: float, seed: int = 11, limit_objects: int = 50) -> list[bytes]:
    """Raw records from existing objects, for redelivery as cross-batch duplicates."""
    rng = random.Random(seed)
    objects = list(storage.list())[-limit_objects:]
    out: list[bytes] = []
    for obj in objects:
        try:
            body = decompress(storage.read(obj.key))
        except Exception:
            continue
        for line in body.replace(b"}{", b"}\n{").splitlines():
            if line.startswith(b"{") and line.endswith(b"}") and rng.random() < share:
                try:
                    orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                out.append(line)
    return out
