"""Parsed records -> curated rows: DESIGN.md §2 "Curated table events" (derived columns, schema)."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import polars as pl
import pyarrow as pa
import pytest

from lake_pipeline.contract import (
    BATCH_ID,
    EVENTS_SCHEMA,
    MAX_CREATED_AT,
    ORDINAL,
    QUARANTINE_SCHEMA,
    REQUIRED_EVENT_COLUMNS,
    SOURCE_KEY,
)
from lake_pipeline.transforms.enrich import enrich, quarantine_frame, to_events_arrow
from lake_pipeline.parse.careful import RecordColumns, parse_object

from tests.support.cases import load_case

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def parsed_records(created_at: list, names: list[str] | None = None) -> RecordColumns:
    p = RecordColumns()
    for i, c in enumerate(created_at):
        p.uuid.append(f"u{i}")
        p.name.append(names[i] if names else "page:view")
        p.created_at.append(c)
        p.payload.append(json.dumps({"i": i}))
        p.source_key.append(f"key-{i % 2}")
        p.ordinal.append(i)
    return p


def enriched(created_at: list, names: list[str] | None = None, batch_id: int = 3) -> pl.DataFrame:
    return enrich(parsed_records(created_at, names).build().records, batch_id)


def reference(created_at: float | int) -> tuple[str, date]:
    """created_at as received (the shortest decimal that round-trips, i.e. what a JSON encoder
    writes), truncated to microseconds."""
    exact = Decimal(repr(float(created_at))) if isinstance(created_at, float) else Decimal(created_at)
    micros = int((exact * 1_000_000).to_integral_value(rounding=ROUND_FLOOR))
    dt = EPOCH + timedelta(microseconds=micros)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), dt.date()


# --- created_datetime and event_date -------------------------------------------------------

EXAMPLES = [
    (0, "1970-01-01T00:00:00.000000Z"),
    (0.0, "1970-01-01T00:00:00.000000Z"),
    (5e-324, "1970-01-01T00:00:00.000000Z"),
    (1e-7, "1970-01-01T00:00:00.000000Z"),
    (1e-6, "1970-01-01T00:00:00.000001Z"),
    (4.9999999999999996e-06, "1970-01-01T00:00:00.000004Z"),
    (9.999999999999999e-06, "1970-01-01T00:00:00.000009Z"),
    (1e-5, "1970-01-01T00:00:00.000010Z"),
    (0.999999, "1970-01-01T00:00:00.999999Z"),
    (0.9999999999999999, "1970-01-01T00:00:00.999999Z"),
    (1.000001, "1970-01-01T00:00:01.000001Z"),
    (86399.9999999, "1970-01-01T23:59:59.999999Z"),
    (math.nextafter(86400, 0), "1970-01-01T23:59:59.999999Z"),
    (86400, "1970-01-02T00:00:00.000000Z"),
    (951782400, "2000-02-29T00:00:00.000000Z"),
    (1700000000, "2023-11-14T22:13:20.000000Z"),
    (1700000000.5, "2023-11-14T22:13:20.500000Z"),
    (1700000000.123456, "2023-11-14T22:13:20.123456Z"),
    (1700000000.1234567, "2023-11-14T22:13:20.123456Z"),
    (1.9999999, "1970-01-01T00:00:01.999999Z"),
    (59.9999996, "1970-01-01T00:00:59.999999Z"),
    (1700000000.000001, "2023-11-14T22:13:20.000001Z"),
    (1616940109.267459, "2021-03-28T14:01:49.267459Z"),
    (1763640000.999999, "2025-11-20T12:00:00.999999Z"),
    (4102444799, "2099-12-31T23:59:59.000000Z"),
    (4102444799.999999, "2099-12-31T23:59:59.999999Z"),
    (math.nextafter(MAX_CREATED_AT, 0), "2099-12-31T23:59:59.999999Z"),
]


@pytest.mark.parametrize("created_at, expected", EXAMPLES, ids=[repr(c) for c, _ in EXAMPLES])
def test_created_datetime_examples(created_at, expected):
    row = enriched([created_at]).row(0, named=True)
    assert row["created_datetime"] == expected
    assert row["event_date"] == date.fromisoformat(expected[:10])
    assert reference(created_at)[0] == expected  # the reference agrees with the hand-written value


def test_created_datetime_is_created_at_as_received_truncated_to_microseconds():
    """Over many values: never rounded up, never a microsecond short of what the producer sent."""
    rng = random.Random(42)
    values: list[float | int] = []
    values += [rng.uniform(0, MAX_CREATED_AT) for _ in range(3000)]
    values += [rng.uniform(0, 2) for _ in range(500)]
    values += [rng.uniform(0, 1e-4) for _ in range(500)]
    values += [rng.randint(1, 100) * 1e-6 for _ in range(200)]  # tiny values print in scientific notation
    # producers typically send microseconds (6 decimals) or time.time() (about 7)
    values += [float(f"{rng.randint(0, MAX_CREATED_AT - 1)}.{rng.randint(0, 999999):06d}") for _ in range(3000)]
    values += [float(f"{rng.randint(1_600_000_000, 1_800_000_000)}.{rng.randint(0, 9999999):07d}") for _ in range(2000)]
    values += [float(f"{rng.randint(0, 86400 * 3)}.{rng.randint(0, 999):03d}") for _ in range(500)]
    # just below second and day boundaries
    values += [math.nextafter(float(rng.randint(1, MAX_CREATED_AT - 1)), 0) for _ in range(500)]
    values += [math.nextafter(float(86400 * rng.randint(1, 47481)), 0) for _ in range(500)]
    values += [rng.randint(0, MAX_CREATED_AT - 1) for _ in range(500)]
    frame = enriched(values)
    got = list(zip(frame.get_column("created_datetime").to_list(), frame.get_column("event_date").to_list()))
    want = [reference(v) for v in values]
    bad = [(v, g, w) for v, g, w in zip(values, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(values)} differ, e.g. {bad[:5]}"


def test_created_datetime_is_iso_utc_fixed_width():
    rng = random.Random(1)
    values = [0, 1, 59.5, 86399.9999999, MAX_CREATED_AT - 1, math.nextafter(MAX_CREATED_AT, 0)]
    values += [rng.uniform(0, MAX_CREATED_AT) for _ in range(1000)]
    strings = enriched(values).get_column("created_datetime").to_list()
    for s in strings:
        assert len(s) == 27
        assert ISO.match(s), s
        # it is a real UTC instant
        assert datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) >= EPOCH


def test_string_order_is_time_order():
    rng = random.Random(2)
    values = [rng.uniform(0, MAX_CREATED_AT) for _ in range(2000)]
    values += [1700000000 + rng.random() for _ in range(2000)]  # many within the same second
    values += [86400 * k + d for k in (1, 10000, 47000) for d in (-1e-6, -1e-9, 0, 1e-6, 0.5)]
    values += [rng.randint(0, MAX_CREATED_AT - 1) for _ in range(500)]
    frame = enriched(values).select("created_at", "created_datetime")
    by_time = frame.sort("created_at").get_column("created_datetime").to_list()
    assert by_time == sorted(by_time)
    # and distinct instants a microsecond or more apart never share a string
    pairs = frame.sort("created_at").rows()
    for (a, sa), (b, sb) in zip(pairs, pairs[1:]):
        if b - a >= 2e-6:
            assert sa < sb, (a, b, sa, sb)


def test_event_date_is_the_utc_date_and_never_crosses_into_the_next_day():
    rng = random.Random(3)
    days = [rng.randint(1, 47481) for _ in range(300)] + [1, 10957, 11016, 47481]  # incl. 2000-01-01, 2000-02-29
    values = [math.nextafter(float(86400 * d), 0) for d in days]  # the last instant of the previous day
    values += [float(86400 * d) for d in days]  # midnight
    values += [86400 * d - 0.000001 for d in days]  # one microsecond before midnight
    frame = enriched(values)
    expected_dates = [date(1970, 1, 1) + timedelta(days=d - 1) for d in days]
    expected_dates += [date(1970, 1, 1) + timedelta(days=d) for d in days]
    expected_dates += [date(1970, 1, 1) + timedelta(days=d - 1) for d in days]
    assert frame.get_column("event_date").to_list() == expected_dates
    for s, d in zip(frame.get_column("created_datetime").to_list(), expected_dates):
        assert s[:10] == d.isoformat()
    strings = frame.get_column("created_datetime").to_list()
    assert all(s.endswith("T23:59:59.999999Z") for s in strings[: len(days)])
    assert all(s.endswith("T00:00:00.000000Z") for s in strings[len(days) : 2 * len(days)])
    assert all(s.endswith("T23:59:59.999999Z") for s in strings[2 * len(days) :])
    assert frame.schema["event_date"] == pl.Date


def test_event_date_matches_python_utc_date():
    rng = random.Random(4)
    values = [rng.uniform(0, MAX_CREATED_AT) for _ in range(2000)]
    got = enriched(values).get_column("event_date").to_list()
    assert got == [datetime.fromtimestamp(math.floor(v), UTC).date() for v in values]


# --- event_type and event_subtype ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, event_type, event_subtype",
    [
        ("a", "a", None),
        ("a:b", "a", "b"),
        ("a:", "a", None),
        ("a::c", "a", None),
        ("a:b:c", "a", "b"),
        ("a:b:c:d", "a", "b"),
        ("a:b::", "a", "b"),
        ("page_view", "page_view", None),
        ("Order.Placed:v2", "Order.Placed", "v2"),
        ("\u00e9v\u00e9nement:cr\u00e9\u00e9", "\u00e9v\u00e9nement", "cr\u00e9\u00e9"),
        ("a b:c d", "a b", "c d"),
    ],
)
def test_event_type_and_subtype(name, event_type, event_subtype):
    row = enriched([1700000000.5], [name]).row(0, named=True)
    assert row["event_type"] == event_type
    assert row["event_subtype"] == event_subtype
    assert row["event_name"] == name  # as received


def test_event_type_and_subtype_vectorised_over_mixed_names():
    names = ["a", "a:b", "a::c", "a:b:c:d", "x:", "y:z"] * 50
    frame = enriched([1.0] * len(names), names)
    assert frame.get_column("event_type").to_list() == [n.split(":")[0] for n in names]
    assert frame.get_column("event_subtype").to_list() == [
        (n.split(":")[1] or None) if ":" in n else None for n in names
    ]


# --- The derived columns come from event_name and created_at, not from the payload ------------


def test_fields_named_like_derived_columns_stay_in_payload():
    data, _ = load_case("derived_named_fields.json")
    out = RecordColumns()
    parse_object("k", data, out)
    row = enrich(out.build().records, 9).row(0, named=True)
    assert row["event_type"] == "real"
    assert row["event_subtype"] == "sub"
    assert row["created_datetime"] == "1970-01-02T00:00:00.000000Z"
    assert row["event_date"] == date(1970, 1, 2)
    assert row[SOURCE_KEY] == "k" and row[BATCH_ID] == 9 and row[ORDINAL] == 0
    payload = json.loads(row["payload"])
    assert payload["event_type"] == "fake"
    assert payload["event_subtype"] == "fake-sub"
    assert payload["created_datetime"] == "1999-01-01T00:00:00.000000Z"
    assert payload["event_date"] == "1999-01-01"
    assert payload["_source_key"] == "fake-key" and payload["_batch_id"] == -1 and payload["_ordinal"] == 99


# --- created_at and the schema ---------------------------------------------------------------


def test_created_at_is_numeric_and_keeps_its_fraction():
    values = [1700000000.123456, 1700000000.5, 0.25, 1700000000, 0, 86399.9999999, 4102444799.999999]
    frame = enriched(values)
    assert frame.schema["created_at"] == pl.Float64
    assert frame.get_column("created_at").to_list() == [float(v) for v in values]
    table = to_events_arrow(frame)
    assert table.column("created_at").to_pylist() == [float(v) for v in values]


def test_enrich_output_follows_the_events_schema():
    out = RecordColumns()
    for name in ("ndjson_lf.json", "validation_rules.json", "lossless_payload.json"):
        parse_object(name, load_case(name)[0], out)
    frame = enrich(out.build().records, batch_id=12)
    assert frame.columns == EVENTS_SCHEMA.names
    assert frame.height == len(out.uuid)
    # rows keep arrival order and their lineage
    assert frame.get_column("event_uuid").to_list() == out.uuid
    assert frame.get_column(SOURCE_KEY).to_list() == out.source_key
    assert frame.get_column(ORDINAL).to_list() == out.ordinal
    assert frame.get_column("payload").to_list() == out.payload
    assert frame.get_column(BATCH_ID).to_list() == [12] * frame.height
    for column in REQUIRED_EVENT_COLUMNS:
        assert frame.get_column(column).null_count() == 0, column
    table = to_events_arrow(frame)
    # Same names, order and nullability; strings are string views (no copy out of Polars).
    assert [(f.name, f.nullable) for f in table.schema] == [(f.name, f.nullable) for f in EVENTS_SCHEMA]
    assert table.cast(EVENTS_SCHEMA).schema.equals(EVENTS_SCHEMA)
    assert all(
        f.type == e.type or (e.type == pa.string() and f.type == pa.string_view())
        for f, e in zip(table.schema, EVENTS_SCHEMA)
    )
    # internal lineage columns start with "_"
    assert {n for n in EVENTS_SCHEMA.names if n.startswith("_")} == {SOURCE_KEY, ORDINAL, BATCH_ID}


def test_enrich_of_no_records():
    frame = enrich(RecordColumns().build().records, batch_id=1)
    assert frame.height == 0 and frame.columns == EVENTS_SCHEMA.names
    assert to_events_arrow(frame).cast(EVENTS_SCHEMA).schema.equals(EVENTS_SCHEMA)


def test_quarantine_frame_follows_the_quarantine_schema():
    out = RecordColumns()
    parse_object("bad.gz", b"\x1f\x8b garbage", out)
    parse_object("mixed.json", b'{"event_uuid":"a","event_name":"x","created_at":1}\n[1]\n', out)
    now = datetime(2025, 11, 20, 13, 5, tzinfo=UTC)
    table = quarantine_frame(out.build().quarantine, batch_id=4, now=now)
    assert table.schema.equals(QUARANTINE_SCHEMA)
    rows = table.to_pylist()
    assert [r["raw_record"] for r in rows] == [None, "[1]"]
    assert [r["source_key"] for r in rows] == ["bad.gz", "mixed.json"]
    assert [r[ORDINAL] for r in rows] == [None, 1]
    assert all(r["reason"] for r in rows)
    assert all(r["quarantined_at"] == now and r[BATCH_ID] == 4 for r in rows)
    assert quarantine_frame(RecordColumns().build().quarantine, 1, now).num_rows == 0
    assert pa.types.is_timestamp(table.schema.field("quarantined_at").type)
