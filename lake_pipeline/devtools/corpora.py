"""Bench corpora shaped like production, not like our generator (`make bench`, DESIGN.md §5).

- :func:`write_realistic`: ordinary application payloads, written the way Python producers
  write them (``json.dumps``, some with its default ``", "``/``": "`` separators and ASCII
  escapes, some compact UTF-8): floats as Python prints them (``0.0007427441630921683``,
  ``7.4e-05``), integers beyond 64 bits, unicode text with ``}{``, quotes, backslashes and
  newlines inside strings, nulls, booleans, nesting 5 deep, and about 20% of records over
  2 KB. Firehose framing (gzip, concatenated) or newline-delimited, optionally with a share
  of malformed or invalid lines in every object (and, for each such corpus, the same events
  without them).
- :func:`write_big_object`: one object of Firehose's maximum size (128 MiB, uncompressed).

Everything is deterministic for a seed; `bench.py` caches the results under ``.bench/``.
"""

from __future__ import annotations

import gzip
import json
import random
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from lake_pipeline.devtools.synthetic import event_names
from lake_pipeline.ingest.firehose import object_key
from lake_pipeline.storage.objects import Storage

MIB = 1024 * 1024

_TEXT = [
    "Order shipped 📦 — tracking {id}",
    "Ünïcödé naïve café; 東京都渋谷区; Привет, мир; שלום; مرحبا",
    'He said "}{" and left \\ the room',
    "line one\nline two\r\nline three\ttabbed",
    '{"event_uuid":"not-a-record","event_name":"x","created_at":1}',
    "emoji 😀🎉👩\u200d💻 and a ZWJ",
    "}{}{ braces }{ in text {} [] ,:",
    "plain ascii text about pipelines and lakehouses",
    "null",
    "",
]
_WORDS = ("lake delta parquet stream firehose kinesis event batch window partition merge compact "
          "vacuum sensor asset check quarantine ledger uuid horizon arrival ordinal").split()


def _float(rng: random.Random) -> float:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.random() * 1e-3  # 0.0007427441630921683: 19 digits after the point
    if kind == 1:
        return rng.random() * 1e-5  # 7.427441630921683e-06
    if kind == 2:
        return round(rng.uniform(0, 1000), 2)
    if kind == 3:
        return rng.uniform(-180, 180)  # 48.85661400000001
    if kind == 4:
        return rng.random() * 10 ** rng.randrange(15, 25)  # 1.2345e+21
    return rng.random()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _payload(rng: random.Random, big: bool) -> dict:
    """An application payload: nested 5 deep (record > context > device > screen > viewport)."""
    p: dict = {
        "user_id": f"u{rng.randrange(200_000):07d}",
        "context": {"device": {"os": rng.choice(["ios", "android", "web"]),
                               "screen": {"density": _float(rng), "viewport": {"w": rng.randrange(320, 3840),
                                                                               "h": rng.randrange(240, 2160)}}}},
        "metrics": [_float(rng) for _ in range(rng.randrange(0, 3))],
        "consent": rng.choice([True, False, None]),
        "message": rng.choice(_TEXT).replace("{id}", str(rng.randrange(10**9))),
    }
    if rng.random() < 0.3:
        p["session"] = {"seq": rng.randrange(10_000), "resumed": rng.random() < 0.1, "referrer": None}
    if rng.random() < 0.05:
        p["external_id"] = rng.randrange(2**64, 2**70)  # beyond 64 bits
    if rng.random() < 0.3:
        p["amount"] = {"value": round(rng.uniform(0.5, 900), 2), "currency": rng.choice(["EUR", "USD", "JPY"])}
    if big:  # over 2 KB: a cart or a long text
        if rng.random() < 0.5:
            p["items"] = [{"sku": f"SKU-{rng.randrange(10**5)}", "qty": rng.randrange(1, 5), "price": _float(rng),
                           "tags": [rng.choice(_WORDS) for _ in range(2)], "note": rng.choice(_TEXT)}
                          for _ in range(rng.randrange(16, 18))]
        else:
            p["description"] = _text(rng, rng.randrange(245, 270)) + " " + rng.choice(_TEXT)
    return p


def _dumps(rng: random.Random, record: dict) -> bytes:
    if rng.random() < 0.4:  # json.dumps' defaults: ", " and ": ", non-ASCII as \\u escapes
        return json.dumps(record).encode()
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _bad_line(rng: random.Random, good: bytes) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return good[: max(2, len(good) // 2)]  # truncated
    if kind == 1:
        return good[:-1] + b',"bad":"\xff\xfe"}'  # invalid UTF-8
    if kind == 2:
        return good.replace(b'"event_uuid"', b'"event_uuidX"', 1)  # missing uuid (valid JSON)
    if kind == 3:
        return b'["not", "an", "object"]'
    if kind == 4:
        return good[:-1] + b',"v":NaN}'  # not JSON
    if kind == 5:
        return good[:-1] + b',"trailing":[1,2,],}'  # trailing commas
    if kind == 6:
        return good.replace(b'"created_at":', b'"created_at":"', 1).replace(b", ", b'", ', 1)  # string created_at
    return good.replace(b'"event_name":"', b'"event_name":":', 1).replace(b'"event_name": "', b'"event_name": ":', 1)


def realistic_records(events: int, start: datetime, seed: int, span_seconds: int = 3600) -> Iterator[bytes]:
    """``events`` records (one JSON text each) with created_at spread over ``span_seconds``."""
    rng = random.Random(seed)
    names = event_names()
    t0 = start.astimezone(UTC).timestamp()
    for i in range(events):
        record = {
            "event_uuid": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
            "event_name": rng.choice(names),
            "created_at": t0 + span_seconds * (i + rng.random()) / events,  # as time.time() gives it
            **_payload(rng, big=rng.random() < 0.2),
        }
        yield _dumps(rng, record)


def write_realistic(
    storage: Storage,
    events: int,
    objects: int,
    *,
    start: datetime,
    seed: int = 13,
    newline_delimited: bool = False,
    bad_share: float = 0.0,
    compress: bool = True,
) -> dict[str, int]:
    """Write ``events`` realistic records in ``objects`` objects; with ``bad_share``, also that
    share of malformed or invalid lines in every object (the good records are the same for any
    share). Returns records written per kind: ``events`` and ``bad``."""
    rng = random.Random(seed + 1)
    per_object = events // objects
    records = realistic_records(events, start, seed)
    counts = {"events": 0, "bad": 0}
    for n in range(objects):
        count = per_object if n < objects - 1 else events - per_object * (objects - 1)
        lines: list[bytes] = []
        for _ in range(count):
            line = next(records)
            lines.append(line)
            if bad_share and rng.random() < bad_share:
                lines.append(_bad_line(rng, line))
                counts["bad"] += 1
        counts["events"] += count
        body = b"\n".join(lines) + b"\n" if newline_delimited else b"".join(lines)
        arrived = start + timedelta(seconds=(n + 1) * 3600 / objects - 1)
        uid = str(uuidlib.UUID(int=seed * 1000 + n))
        storage.write(object_key("events", arrived, ".gz" if compress else "", uid),
                      gzip.compress(body, compresslevel=5) if compress else body)
    return counts


def write_big_object(storage: Storage, *, start: datetime, size: int = 128 * MIB, seed: int = 17) -> int:
    """One uncompressed object of ``size`` bytes (Firehose's maximum), concatenated records;
    returns the number of records."""
    parts: list[bytes] = []
    total = 0
    for line in realistic_records(10 * size // 600, start, seed):  # far more than needed; stops at size
        if total + len(line) > size:
            break
        parts.append(line)
        total += len(line)
    storage.write(object_key("events", start + timedelta(minutes=30), "", str(uuidlib.UUID(int=seed))), b"".join(parts))
    return len(parts)
