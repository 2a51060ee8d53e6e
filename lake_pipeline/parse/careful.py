"""Raw Firehose object → records (pure: bytes in, columns out).

Contract (DESIGN.md §2, "Raw objects"):
- gzip (possibly multi-member) or plain, told apart by magic bytes;
- JSON values concatenated with no delimiter, newline-delimited (``\\n`` or
  ``\\r\\n``) or pretty-printed; strings may contain ``}{`` and escaped newlines;
- a record that can't be parsed is quarantined and parsing resumes at the next
  line; invalid UTF-8 is quarantined, never replaced in the curated data.

Two paths give the same result. The *fast path* splits at ``}{``/line breaks and
parses every piece with orjson; it takes a piece only when it is one complete,
plainly valid JSON object (a split inside a string always leaves an unterminated
string, so a wrong split can't pass). Anything else (malformed or invalid records,
pretty-printing, invalid UTF-8) takes the *careful path*: a position-tracking scan
with the standard library's decoder. Either way the payload is cut out of the
record's own text (`text.py`), so numbers, escapes and spacing stay as received.

The bulk parser (`bulk.py`) hands over single records (:func:`parse_record`) and
the spans around records it can't vouch for (:func:`parse_windows`).
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from dataclasses import dataclass, field

import orjson
import polars as pl
from isal import igzip, isal_zlib

from lake_pipeline.contract import (
    CREATED_AT,
    EVENT_NAME,
    EVENT_UUID,
    MAX_NESTING,
    MISSING,
    Reason,
    not_object_reason,
    validate_fields,
)
from lake_pipeline.parse.records import QUARANTINE_SCHEMA, RECORD_SCHEMA, ParsedRecords
from lake_pipeline.parse.text import fast_payload, may_be_too_deep, nesting_depth, payload_text

GZIP_MAGIC = b"\x1f\x8b"
_WS = " \t\r\n\ufeff"


class UnreadableObject(Exception):
    """The object's bytes can't be turned into text (e.g. corrupt gzip)."""


def decompress(data: bytes) -> bytes:
    """Return the object's payload bytes, gunzipping when the magic bytes say gzip."""
    if data[:2] != GZIP_MAGIC:
        return data
    one = _one_member(data)
    if one is not None:
        return one
    try:
        return igzip.decompress(data)  # ISA-L: gzip-compatible (members, CRC), ~2x faster than zlib
    except (OSError, EOFError, zlib.error, isal_zlib.error) as exc:
        raise UnreadableObject(f"gzip: {exc}") from exc


def _one_member(data: bytes) -> bytes | None:
    """The usual object, one whole gzip member and nothing after it, decompressed in one call
    (its CRC and length checked); None for anything else (several members, padding, a
    truncated or corrupt stream), which :func:`decompress` leaves to the gzip reader and its
    errors. Measured on 17 MB Firehose objects: 0.10 s and 20k page faults each, against
    0.14 s and 40k for the reader, which decompresses in chunks and joins them."""
    inflate = isal_zlib.decompressobj(wbits=31)
    try:
        out = inflate.decompress(data)
    except isal_zlib.error:
        return None
    return out if inflate.eof and not inflate.unused_data else None


@dataclass
class RecordColumns:
    """The careful parser's accumulator: columns of parsed records from one or more
    objects, in arrival order. :meth:`build` turns it into the one parsed type."""

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

    def build(self, sizes: dict[str, int] | None = None) -> ParsedRecords:
        """The accumulated records as :class:`ParsedRecords` (``sizes``: raw bytes per object)."""
        records = pl.DataFrame(
            [self.uuid, self.name, self.created_at, self.payload, self.source_key, self.ordinal],
            schema=RECORD_SCHEMA, orient="col",
        )
        quarantine = pl.DataFrame(
            [self.q_raw, self.q_reason, self.q_source_key, self.q_ordinal], schema=QUARANTINE_SCHEMA, orient="col"
        )
        return ParsedRecords(records, quarantine, dict(self.records_per_object), dict(sizes or {}))

    def extend(self, part: RecordColumns) -> None:
        """Append ``part``'s records (their ``records_per_object`` is the caller's business)."""
        _extend(self, part)

    def quarantine(self, key: str, raw: str | None, reason: str, ordinal: int | None) -> None:
        self.q_raw.append(raw)
        self.q_reason.append(reason)
        self.q_source_key.append(key)
        self.q_ordinal.append(ordinal)


def parse_object(key: str, data: bytes, out: RecordColumns) -> int:
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
    n = _parse_body(key, body, out)
    out.records_per_object[key] = n
    return n


def _parse_fast(key: str, body: bytes, out: RecordColumns) -> int | None:
    """The fast path alone: None (and ``out`` untouched) when any line needs the careful path."""
    scratch = RecordColumns()
    n = _parse_body(key, body, scratch, careful=False)
    if n is None:
        return None
    _extend(out, scratch)
    return n


def _extend(out: RecordColumns, part: RecordColumns) -> None:
    out.uuid += part.uuid
    out.name += part.name
    out.created_at += part.created_at
    out.payload += part.payload
    out.source_key += part.source_key
    out.ordinal += part.ordinal
    out.q_raw += part.q_raw
    out.q_reason += part.q_reason
    out.q_source_key += part.q_source_key
    out.q_ordinal += part.q_ordinal


def split_units(body: bytes, braces: bool = True) -> tuple[list[bytes], list[bytes]]:
    """Split an object into candidate records: its lines, and (``braces``) each line again at
    ``}{``. Returns the units and the separator that followed each (``b"\\n"``, or ``b""``
    where ``}{`` was split), so any run of units can be put back together byte for byte.
    ``body.replace(b"}{", b"}\\n{")`` has exactly these units as its lines."""
    units: list[bytes] = []
    seps: list[bytes] = []
    for line in body.split(b"\n"):
        if braces and b"}{" in line:
            parts = line.split(b"}{")
            units.append(parts[0] + b"}")
            units += [b"{" + part + b"}" for part in parts[1:-1]]
            units.append(b"{" + parts[-1])
            seps += [b""] * (len(parts) - 1)
        else:
            units.append(line)
        seps.append(b"\n")
    seps[-1] = b""
    return units, seps


def _parse_body(key: str, body: bytes, out: RecordColumns, careful: bool = True) -> int | None:
    """Fast path unit by unit; a unit the fast path can't take is handed, with as
    many following units as it needs, to the careful parser.

    The fast path takes a unit that orjson reads as one plainly valid object whose payload the
    shortcut of `text.py` can cut; anything else (invalid records, for their exact reason, too)
    goes to the careful parser."""
    loads = orjson.loads
    uuids, names, created, payloads, ordinals = out.uuid, out.name, out.created_at, out.payload, out.ordinal
    first_good = len(uuids)
    units, seps = split_units(body)
    n_units = len(units)
    i = 0  # record ordinal within the object
    k = 0
    while k < n_units:
        piece = units[k]
        try:
            d = loads(piece)
            if type(d) is dict and piece[:1] == b"{" and not may_be_too_deep(piece):
                u = d.pop(EVENT_UUID, MISSING)
                nm = d.pop(EVENT_NAME, MISSING)
                c = d.pop(CREATED_AT, MISSING)
                if validate_fields(u, nm, c) is None:
                    payload = fast_payload(piece.decode().rstrip(" \t\r"))
                    if payload is not None:
                        uuids.append(u)
                        names.append(nm)
                        created.append(c)
                        payloads.append(payload)
                        ordinals.append(i)
                        i += 1
                        k += 1
                        continue
            # else: not plainly valid, another layout, or an indented (pretty-printed) line
        except orjson.JSONDecodeError:
            if not piece.strip(b" \t\r"):  # JSON whitespace only (not \x0b, \x0c)
                k += 1  # blank line
                continue
        if not careful:
            return None
        out.source_key.extend([key] * (len(uuids) - first_good))
        k, i = _careful_window(key, units, seps, k, i, out)
        first_good = len(uuids)
    out.source_key.extend([key] * (len(uuids) - first_good))
    return i


def _careful_window(
    key: str, units: list[bytes], seps: list[bytes], k: int, i: int, out: RecordColumns
) -> tuple[int, int]:
    """Parse units[k:...] carefully, widening the window while its last record runs
    past the window's end. Returns (next unit index, next ordinal)."""
    width = 1
    n_units = len(units)
    while True:
        hi = min(n_units, k + width)
        window = b"".join([u + s for u, s in zip(units[k:hi], seps[k:hi])])
        scratch = RecordColumns()
        n, needs_more = _careful_scan(
            key, window, scratch, i, at_end=hi >= n_units, at_line_end=seps[hi - 1] == b"\n"
        )
        if not needs_more:
            break
        width *= 2
    _extend(out, scratch)
    return hi, i + n


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _has_escaped_bytes(text: str) -> bool:
    # surrogateescape maps each invalid byte to U+DC80..U+DCFF; valid UTF-8 never decodes to those.
    return _ESCAPED_BYTE.search(text) is not None


class _NonFinite(float):
    """A NaN or Infinity literal: Python's decoder reads them, but they are not JSON numbers."""


class _LongInt:
    """An integer token longer than Python converts (sys.get_int_max_str_digits()); in the payload
    its text is kept like any number's, as a common field it is refused."""

    def __init__(self, text: str):
        self.text = text


def _parse_int(text: str) -> int | _LongInt:
    limit = sys.get_int_max_str_digits()
    return int(text) if not limit or len(text) - (text[0] == "-") <= limit else _LongInt(text)


_DECODER = json.JSONDecoder(parse_constant=lambda text: _NonFinite(text), parse_int=_parse_int)
_RESYNC_ATTEMPTS = 64


def _record_end(text: str, start: int, err_pos: int, at_end: bool = True) -> int | None:
    """Where parsing resumes after a malformed record that starts at ``start``; None when
    ``text`` is a window that ends before that can be told (``at_end`` false: more follows).

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
    attempts = 0
    while attempts < _RESYNC_ATTEMPTS:
        q = text.find("{", q + 1, limit)
        if q == -1:
            break
        # Skipping a nested "{" is cheap and doesn't use up an attempt: a broken record
        # can hold any number of nested objects, and the records after it must still arrive.
        p = q - 1
        while p > start and text[p] in _WS:
            p -= 1
        nested = text[p] in ":,["
        if nested and not text.startswith('{"event_uuid"', q):
            continue
        attempts += 1
        try:
            value, end = _DECODER.raw_decode(text, q)
        except json.JSONDecodeError as exc:
            if not at_end and exc.pos >= len(text.rstrip(_WS)):
                return None  # the candidate runs past the window: the text after it decides
            continue
        except (ValueError, RecursionError):
            continue
        after = text[end:end + 1]
        while after in (" ", "\t"):
            end += 1
            after = text[end:end + 1]
        if not after and not at_end:
            return None  # what follows the candidate is past the window
        # Inside a container, a value is followed by "," or a closing bracket.
        if type(value) is dict and after not in (",", "}", "]", ":"):
            return q
    return limit


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_careful(key: str, body: bytes, out: RecordColumns) -> int:
    """The careful path over a whole object (the reference the fast path must agree with)."""
    n, _ = _careful_scan(key, body, out)
    return n


def _careful_scan(
    key: str,
    body: bytes,
    out: RecordColumns,
    first_ordinal: int = 0,
    at_end: bool = True,
    at_line_end: bool = True,
) -> tuple[int, bool]:
    """Parse ``body`` record by record, tracking positions; return (records, needs_more).

    ``needs_more`` is True when ``body`` is a window of a larger object that ends
    inside a record (the error is at the very end), or whose last malformed record
    runs to the window's end in mid-line: the caller widens it, so the result is
    the same as for the whole object.
    """
    try:
        text = body.decode("utf-8")
        dirty = False
    except UnicodeDecodeError:
        text = body.decode("utf-8", "surrogateescape")
        dirty = True
    n = len(text)
    content_end = len(text.rstrip(_WS))
    pos = 0
    i = first_ordinal
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n:
            break
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            if not at_end and isinstance(exc, json.JSONDecodeError) and (
                exc.pos >= content_end or (not at_line_end and exc.msg.startswith("Unterminated string"))
            ):
                # The window ends inside this record (possibly inside a string holding "}{").
                return i - first_ordinal, True
            end = _record_end(text, pos, exc.pos if isinstance(exc, json.JSONDecodeError) else pos, at_end)
            if end is None or (end >= n and not at_end and not at_line_end):
                return i - first_ordinal, True
            span = text[pos:end].rstrip(_WS)
            out.quarantine(key, _readable(span), _undecodable_reason(exc, dirty and _has_escaped_bytes(span)), i)
        else:
            _add_value(key, value, text[pos:end], dirty, i, out)
        i += 1
        pos = end
    return i - first_ordinal, False


def _undecodable_reason(exc: Exception, not_utf8: bool) -> str:
    """Why the decoder refused a record: malformed JSON, or nesting deeper than Python's recursion
    limit (RecursionError; far beyond MAX_NESTING)."""
    if not_utf8:
        return Reason.NOT_UTF8
    if isinstance(exc, json.JSONDecodeError):
        return Reason.MALFORMED_JSON.format(detail=exc.msg)
    return Reason.TOO_DEEP


def parse_record(key: str, text: str, ordinal: int, out: RecordColumns) -> bool:
    """One record another reader cut out of its object (``text``: its exact text, valid UTF-8),
    parsed as the careful parser parses it in place. False, and ``out`` untouched, when the text is
    not exactly one JSON value to Python's decoder: then only the object's own text can tell
    where the record ends, and the caller hands over that span instead."""
    try:
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return False
    if end != len(text):
        return False
    _add_value(key, value, text, False, ordinal, out)
    return True


def parse_windows(
    key: str, units: list[bytes], seps: list[bytes], starts: list[int], ordinal_at, out: RecordColumns
) -> list[tuple[int, int, int]]:
    """The careful parser over the spans of an object that begin at units ``starts`` (ascending;
    a start inside an earlier span is skipped), each widened to a safe boundary as
    :func:`_careful_window` does. ``ordinal_at(k, spans)`` gives the ordinal of the first record of
    a span that begins at unit k, given the spans so far. Returns (first unit, end unit, records)."""
    spans: list[tuple[int, int, int]] = []
    end = 0
    for k in starts:
        if k < end:
            continue
        first = ordinal_at(k, spans)
        end, following = _careful_window(key, units, seps, k, first, out)
        spans.append((k, end, following - first))
    return spans


def _common_fields(value: dict) -> tuple[object, object, object, str | None]:
    """Pop the common fields; NaN/Infinity literals among them are read as the floats they are."""
    fields = [value.pop(name, MISSING) for name in (EVENT_UUID, EVENT_NAME, CREATED_AT)]
    for j, (name, v) in enumerate(zip((EVENT_UUID, EVENT_NAME, CREATED_AT), fields)):
        if type(v) is _LongInt:
            return *fields, Reason.NUMBER_TOO_LONG.format(field=name, limit=sys.get_int_max_str_digits())
        if type(v) is _NonFinite:
            fields[j] = float(v)
    return *fields, None


def _add_value(key: str, value: object, span: str, dirty: bool, ordinal: int, out: RecordColumns) -> None:
    """A decoded record: into the valid columns, or quarantined with its reason."""
    if dirty and _has_escaped_bytes(span):
        out.quarantine(key, _readable(span), Reason.NOT_UTF8, ordinal)
        return
    if may_be_too_deep(span) and nesting_depth(span) > MAX_NESTING:
        out.quarantine(key, span, Reason.TOO_DEEP, ordinal)
        return
    if type(value) is not dict:
        out.quarantine(key, span, not_object_reason(0 if type(value) is _LongInt else value), ordinal)
        return
    u, nm, c, reason = _common_fields(value)
    if reason is None:
        reason = validate_fields(u, nm, c)
    if reason is None:
        if not _encodable(u):
            reason = Reason.UNENCODABLE.format(field=EVENT_UUID)
        elif not _encodable(nm):
            reason = Reason.UNENCODABLE.format(field=EVENT_NAME)
    if reason is None:
        payload = payload_text(span)
        if ("NaN" in payload or "Infinity" in payload) and _holds_non_finite(value):
            reason = Reason.NON_FINITE_PAYLOAD
    if reason is not None:
        out.quarantine(key, _readable(span), reason, ordinal)
        return
    out.uuid.append(u)
    out.name.append(nm)
    out.created_at.append(c)
    out.payload.append(payload)
    out.source_key.append(key)
    out.ordinal.append(ordinal)


def _holds_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if type(v) is _NonFinite:
            return True
        if type(v) is dict:
            stack += v.values()
        elif type(v) is list:
            stack += v
    return False


def _readable(span: str) -> str:
    """The record's original text for quarantine; undecodable bytes become U+FFFD."""
    if not _encodable(span):
        return span.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return span
