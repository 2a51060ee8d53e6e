"""The data contract (DESIGN.md §2): schemas, validation rules and quarantine reasons.

This module is the one place the contract lives. Everything else imports from it:
the parser and enricher, the Delta writers, the asset checks and the tests.
"""

from __future__ import annotations

import math

import polars as pl
import pyarrow as pa

# --- Record fields ---
EVENT_UUID = "event_uuid"
EVENT_NAME = "event_name"
CREATED_AT = "created_at"
COMMON_FIELDS = (EVENT_UUID, EVENT_NAME, CREATED_AT)

# created_at must satisfy 0 <= created_at < MAX_CREATED_AT (2100-01-01T00:00:00Z).
MAX_CREATED_AT = 4102444800

# --- The payload, and numbers in it (DESIGN.md §2: "payload ... is lossless") ---
# `payload` is the record's own text with the three common members cut out: each cut member
# takes its separator with it (the comma and the whitespace around it; the last kept member is
# followed by the whitespace that closed the record), a record with no other member gives `{}`,
# and every other byte stays as received: key order, duplicate keys, whitespace, escapes, and
# the text of every number (`parse/text.py` cuts it; both parsers use it).
#
# Numbers are kept as received, whatever their size or precision: `1.0`, `1E5`, `-0.0`,
# `0.10000000000000001`, `12345678901234567890`, a 5000-digit integer, and numbers beyond the
# range of a double (`-1e+9999`, `123123e100000`, `123e-10000000`) all stay in `payload` exactly
# as sent; none is rounded, overflowed to infinity or underflowed to zero, and none is a reason
# for quarantine. NaN and Infinity are not JSON numbers: a record holding them goes to quarantine
# (Reason.NON_FINITE_PAYLOAD). `created_at` is the one number read as a value: it is stored as the
# nearest double, so a created_at beyond double range is outside the allowed range (and one
# below it, like 1e-400, is 0.0).
#
# A record nested deeper than MAX_NESTING levels of objects and arrays (the record's own braces
# are level 1) goes to quarantine (Reason.TOO_DEEP), whichever parser reads it.
MAX_NESTING = 512

# Arrival-order and lineage columns (internal columns start with "_").
SOURCE_KEY = "_source_key"
BATCH_ID = "_batch_id"
ORDINAL = "_ordinal"  # position of the record inside its raw object

PARTITION_COLUMNS = ["event_date", "event_type"]
# An event's user, as the hourly mart and `lake serve` count and look it up: the text DuckDB's
# json_extract_string gives for payload.user_id (strings unquoted, numbers as written). A payload
# that DuckDB's JSON reader rejects although the contract keeps it as received (a lone surrogate
# escape such as "\ud800") has no user: an error there would fail a whole batch.
USER_ID_SQL = "TRY(json_extract_string(payload, '$.user_id'))"

EVENTS_SCHEMA = pa.schema(
    [
        pa.field(EVENT_UUID, pa.string(), nullable=False),
        pa.field(EVENT_NAME, pa.string(), nullable=False),
        pa.field(CREATED_AT, pa.float64(), nullable=False),
        pa.field("created_datetime", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("event_subtype", pa.string(), nullable=True),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field(SOURCE_KEY, pa.string(), nullable=False),
        pa.field(ORDINAL, pa.int64(), nullable=False),
        pa.field(BATCH_ID, pa.int64(), nullable=False),
    ]
)
REQUIRED_EVENT_COLUMNS = [f.name for f in EVENTS_SCHEMA if not f.nullable]

# No-transform mode (LAKE_ENRICH=false): no added fields beyond the UTC date that
# partitions the table and scopes deduplication; records are otherwise stored as received.
DERIVED_COLUMNS = ["created_datetime", "event_type", "event_subtype"]
RAW_EVENTS_SCHEMA = pa.schema([f for f in EVENTS_SCHEMA if f.name not in DERIVED_COLUMNS])
RAW_PARTITION_COLUMNS = ["event_date"]


def events_schema(enrich: bool = True) -> pa.Schema:
    return EVENTS_SCHEMA if enrich else RAW_EVENTS_SCHEMA


def partition_columns(enrich: bool = True) -> list[str]:
    return PARTITION_COLUMNS if enrich else RAW_PARTITION_COLUMNS

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("raw_record", pa.string(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(ORDINAL, pa.int64(), nullable=True),
        pa.field(BATCH_ID, pa.int64(), nullable=False),
    ]
)

# Per-object rows, with the batch's totals repeated so one commit carries both.
LEDGER_SCHEMA = pa.schema(
    [
        pa.field(BATCH_ID, pa.int64(), nullable=False),
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("object_bytes", pa.int64(), nullable=False),
        pa.field("records", pa.int64(), nullable=False),
        pa.field("inserted", pa.int64(), nullable=False),
        pa.field("duplicates", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("batch_records", pa.int64(), nullable=False),
        pa.field("batch_inserted", pa.int64(), nullable=False),
        pa.field("batch_duplicates", pa.int64(), nullable=False),
        pa.field("batch_quarantined", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=True),
        pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

PLANS_SCHEMA = pa.schema(
    [
        pa.field(BATCH_ID, pa.int64(), nullable=False),
        pa.field("source_keys", pa.list_(pa.string()), nullable=False),
        pa.field("claim_id", pa.string(), nullable=False),
        pa.field("planned_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


# --- Quarantine reasons (a person can act on each) ---
class Reason:
    UNREADABLE_OBJECT = "object could not be decompressed: {detail}"
    NOT_UTF8 = "record is not valid UTF-8 (invalid byte sequence); fix the producer's encoding"
    MALFORMED_JSON = "malformed JSON: {detail}"
    NOT_OBJECT = "record is a JSON {kind}, not a JSON object"
    MISSING_UUID = "event_uuid is missing"
    BAD_UUID = "event_uuid must be a non-empty string, got {got}"
    MISSING_NAME = "event_name is missing"
    BAD_NAME = "event_name must be a string, got {got}"
    EMPTY_TYPE = "event_name has an empty first ':'-separated element (event type)"
    MISSING_CREATED_AT = "created_at is missing"
    BAD_CREATED_AT_TYPE = "created_at must be a JSON number (epoch seconds), got {got}"
    CREATED_AT_NAN = "created_at is NaN"
    CREATED_AT_RANGE = "created_at {value!r} is outside 0 <= created_at < 4102444800 (year 2100)"
    UNENCODABLE = "record contains an unpaired UTF-16 surrogate in {field}, which UTF-8 cannot store"
    NON_FINITE_PAYLOAD = "payload contains NaN or Infinity, which JSON cannot represent"
    TOO_DEEP = f"record is nested too deeply (more than {MAX_NESTING} levels of objects and arrays); flatten it at the producer"
    NUMBER_TOO_LONG = "{field} is an integer longer than {limit} digits, which the JSON decoder refuses"


_MISSING = object()


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _describe(value: object) -> str:
    kind = _json_kind(value)
    if kind in ("null",):
        return "null"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


def validate_fields(uuid: object, name: object, created_at: object) -> str | None:
    """Return the quarantine reason for a record's common fields, or None when valid.

    This is the validity rule (DESIGN.md §2, "A record is valid"); :func:`valid_fields_expr`
    is the same rule over typed columns, for the bulk parser. Callers pass ``_MISSING``
    (see :data:`MISSING`) for absent fields.
    """
    kind = type(created_at)
    if (
        type(uuid) is str and uuid and type(name) is str and name and name[0] != ":"
        and (kind is float or kind is int) and 0 <= created_at < MAX_CREATED_AT
    ):
        return None  # the common case, first: NaN fails the range test and takes the path below
    return _invalid_reason(uuid, name, created_at)


def _invalid_reason(uuid: object, name: object, created_at: object) -> str | None:
    if uuid is _MISSING:
        return Reason.MISSING_UUID
    if type(uuid) is not str or not uuid:
        return Reason.BAD_UUID.format(got=_describe(uuid))
    if name is _MISSING:
        return Reason.MISSING_NAME
    if type(name) is not str:
        return Reason.BAD_NAME.format(got=_describe(name))
    if not name.split(":", 1)[0]:
        return Reason.EMPTY_TYPE
    if created_at is _MISSING:
        return Reason.MISSING_CREATED_AT
    t = type(created_at)
    if t is not int and t is not float:
        return Reason.BAD_CREATED_AT_TYPE.format(got=_describe(created_at))
    if t is float and math.isnan(created_at):
        return Reason.CREATED_AT_NAN
    if not (0 <= created_at < MAX_CREATED_AT):
        return Reason.CREATED_AT_RANGE.format(value=created_at)
    return None


# The JSON type each common field must have (booleans are not numbers): the bulk parser
# checks these on the raw JSON before :func:`valid_fields_expr` checks the values.
FIELD_JSON_TYPES = {EVENT_UUID: "string", EVENT_NAME: "string", CREATED_AT: "number"}


def valid_fields_expr(uuid: pl.Expr, name: pl.Expr, created_at: pl.Expr) -> pl.Expr:
    """:func:`validate_fields` over columns already of the right JSON types (two strings and a
    number as Float64): true exactly where the values are valid, false on nulls."""
    return (
        (uuid != "")
        & (name != "")
        & ~name.str.starts_with(":")
        & created_at.is_finite()
        & (created_at >= 0)
        & (created_at < MAX_CREATED_AT)
    ).fill_null(False)


MISSING = _MISSING


def not_object_reason(value: object) -> str:
    return Reason.NOT_OBJECT.format(kind=_json_kind(value))
