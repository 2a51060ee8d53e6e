"""Raw Firehose object → records (pure: bytes in, columns out).

Contract (DESIGN.md §2, "Raw objects"):
- gzip (possibly multi-member) or plain, told apart by magic bytes;
- JSON values concatenated with no delimiter, newline-delimited (``\\n`` or
  ``\\r\\n``) or pretty-printed; strings may contain ``}{`` and escaped newlines;
- a record that can't be parsed is quarantined and parsing resumes at the next
  line; invalid UTF-8 is quarantined, never replaced in the curated data.

Two paths give the same result. The *fast path* splits at ``}{``/line breaks and
parses every piece with orjson; it is taken only when every piece is a complete
JSON value (a split inside a string always leaves an unterminated string, so a
wrong split can't pass). Anything else (malformed records, pretty-printing,
invalid UTF-8, integers too wide for orjson) takes the *careful path*: a
position-tracking scan with the standard library's decoder.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field

import orjson

from lake_pipeline.contract import (
    MISSING,
    Reason,
    not_object_reason,
    validate_fields,
)

GZIP_MAGIC = b"\x1f\x8b"
# orjson turns integers wider than 64 bits into floats; such objects take the careful path.
_WIDE_INT = re.compile(rb"[0-9]{19}")
_WS = " \t\r\n\ufeff"


class UnreadableObject(Exception):
    """The object's bytes can't be turned into text (e.g. corrupt gzip)."""


def decompress(data: bytes) -> bytes:
    """Return the object's payload bytes, gunzipping when the magic bytes say gzip."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableObject(f"gzip: {exc}") from exc


@dataclass
class ParsedRecords:
    """Columns of parsed records from one or more objects, in arrival order."""

    # valid records
    uuid: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    created_at: list[float] = field(default_factory=list)
    payload: list[str] = field(default_factory=list)
    source_key: list[str] = field(default_factory=list)
    ordinal: list[int] = field(default_factory=list)
    # quarantined records
    q_raw: list[str | None] = field(default_factory=list)
    q_reason: list[str] = field(default_factory=list)
    q_source_key: list[str] = field(default_factory=list)
    q_ordinal: list[int | None] = field(default_factory=list)
    # records read per object
    records_per_object: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.records_per_object.values())

    def quarantine(self, key: str, raw: str | None, reason: str, ordinal: int | None) -> None:
        self.q_raw.append(raw)
        self.q_reason.append(reason)
        self.q_source_key.append(key)
        self.q_ordinal.append(ordinal)


def parse_object(key: str, data: bytes, out: ParsedRecords) -> int:
    """Parse one raw object into ``out``; return the number of records read.

    Never raises for bad content: an unreadable object becomes one quarantine row
    (``raw_record`` null) and counts as one record read.
    """
    try:
        body = decompress(data)
    except UnreadableObject as exc:
        out.quarantine(key, None, Reason.UNREADABLE_OBJECT.format(detail=exc), None)
        out.records_per_object[key] = 1
        return 1
    n = _parse_fast(key, body, out)
    if n is None:
        n = _parse_careful(key, body, out)
    out.records_per_object[key] = n
    return n


def _parse_fast(key: str, body: bytes, out: ParsedRecords) -> int | None:
    if _WIDE_INT.search(body):
        return None
    loads, dumps = orjson.loads, orjson.dumps
    uuids: list[str] = []
    names: list[str] = []
    created: list[float] = []
    payloads: list[str] = []
    ordinals: list[int] = []
    bad: list[tuple[str, str, int]] = []
    i = 0
    try:
        for line in body.replace(b"}{", b"}\n{").splitlines():
            if not line:
                continue
            d = loads(line)
            if type(d) is not dict:
                bad.append((line.decode(), not_object_reason(d), i))
                i += 1
                continue
            u = d.pop("event_uuid", MISSING)
            nm = d.pop("event_name", MISSING)
            c = d.pop("created_at", MISSING)
            reason = validate_fields(u, nm, c)
            if reason is None:
                uuids.append(u)
                names.append(nm)
                created.append(c)
                payloads.append(dumps(d).decode())
                ordinals.append(i)
            else:
                bad.append((line.decode(), reason, i))
            i += 1
    except orjson.JSONDecodeError:
        return None
    out.uuid += uuids
    out.name += names
    out.created_at += created
    out.payload += payloads
    out.source_key += [key] * len(uuids)
    out.ordinal += ordinals
    for raw, reason, ordinal in bad:
        out.quarantine(key, raw, reason, ordinal)
    return i


def _has_escaped_bytes(text: str) -> bool:
    # surrogateescape maps each invalid byte to U+DC80..U+DCFF; valid UTF-8 never decodes to those.
    return any("\udc80" <= ch <= "\udcff" for ch in text)


_DECODER = json.JSONDecoder()
_RESYNC_ATTEMPTS = 64


def _record_end(text: str, start: int, err_pos: int) -> int:
    """Where parsing resumes after a malformed record that starts at ``start``.

    Normally at the next line (or at the start of the error's line when the error
    is a new record beginning there). Firehose concatenates records with no
    delimiter, so a broken record is often followed by good ones on the same
    line: the first ``{`` before that point that opens a complete JSON object
    ending at a record boundary, and is not a nested value (after ``:``, ``,`` or
    ``[``, unless it starts with the ``event_uuid`` key), is where the next
    record starts.
    """
    n = len(text)
    err_pos = min(err_pos, n)
    line_start = text.rfind("\n", 0, err_pos) + 1
    if (
        line_start > start
        and err_pos < n
        and text[err_pos] in "{["
        and not text[line_start:err_pos].strip(_WS)
    ):
        limit = line_start
    else:
        nl = text.find("\n", err_pos)
        limit = n if nl == -1 else nl + 1
    q = start
    for _ in range(_RESYNC_ATTEMPTS):
        q = text.find("{", q + 1, limit)
        if q == -1:
            break
        nested = text[start:q].rstrip(_WS)[-1:] in (":", ",", "[")
        if nested and not text.startswith('{"event_uuid"', q):
            continue
        try:
            value, end = _DECODER.raw_decode(text, q)
        except json.JSONDecodeError:
            continue
        after = text[end:end + 1]
        while after in (" ", "\t"):
            end += 1
            after = text[end:end + 1]
        # Inside a container, a value is followed by "," or a closing bracket.
        if type(value) is dict and after not in (",", "}", "]", ":"):
            return q
    return limit


def _payload_json(d: dict) -> str:
    text = json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # An escaped lone surrogate ("\ud800") survives only as an escape.
        text = json.dumps(d, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_careful(key: str, body: bytes, out: ParsedRecords) -> int:
    try:
        text = body.decode("utf-8")
        dirty = False
    except UnicodeDecodeError:
        text = body.decode("utf-8", "surrogateescape")
        dirty = True
    n = len(text)
    pos = 0
    i = 0
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n:
            break
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            end = _record_end(text, pos, exc.pos)
            span = text[pos:end].rstrip(_WS)
            if dirty and _has_escaped_bytes(span):
                reason = Reason.NOT_UTF8
            else:
                reason = Reason.MALFORMED_JSON.format(detail=exc.msg)
            out.quarantine(key, _readable(span), reason, i)
            i += 1
            pos = end
            continue
        span = text[pos:end]
        pos = end
        ordinal = i
        i += 1
        if dirty and _has_escaped_bytes(span):
            out.quarantine(key, _readable(span), Reason.NOT_UTF8, ordinal)
            continue
        if type(value) is not dict:
            out.quarantine(key, span, not_object_reason(value), ordinal)
            continue
        u = value.pop("event_uuid", MISSING)
        nm = value.pop("event_name", MISSING)
        c = value.pop("created_at", MISSING)
        reason = validate_fields(u, nm, c)
        if reason is None:
            if not _encodable(u):
                reason = Reason.UNENCODABLE.format(field="event_uuid")
            elif not _encodable(nm):
                reason = Reason.UNENCODABLE.format(field="event_name")
        if reason is None:
            try:
                payload = _payload_json(value)
            except ValueError:
                reason = Reason.NON_FINITE_PAYLOAD
        if reason is not None:
            out.quarantine(key, _readable(span), reason, ordinal)
            continue
        out.uuid.append(u)
        out.name.append(nm)
        out.created_at.append(c)
        out.payload.append(payload)
        out.source_key.append(key)
        out.ordinal.append(ordinal)
    return i


def _readable(span: str) -> str:
    """The record's original text for quarantine; undecodable bytes become U+FFFD."""
    if not _encodable(span):
        return span.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return span
