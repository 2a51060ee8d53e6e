"""The JSON-text rules both parsers share (`parse/text.py`): the payload cut out of the record's
own text, and the odd-text rules, each with the input it exists for and a near miss it lets through."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_pipeline.contract import MAX_NESTING
from lake_pipeline.parse import bulk
from lake_pipeline.parse.careful import RecordColumns, parse_object
from lake_pipeline.parse.text import fast_payload, nesting_depth, payload_text

COMMON = b'"event_uuid":"u","event_name":"x","created_at":1'


def bulk_row(tmp_path: Path, record: bytes) -> dict:
    """DuckDB's row for a one-record object."""
    path = tmp_path / "000000"
    path.write_bytes(record)
    con = duckdb.connect()
    try:
        rows, failed = bulk.read(con, [path], "unstructured")
    finally:
        con.close()
    assert not failed and rows.height == 1
    return rows.with_columns(bulk.vouched().alias("vouched")).row(0, named=True)


def python_payload(record: bytes) -> str:
    out = RecordColumns()
    parse_object("k", record, out)
    assert out.q_reason == [], out.q_reason
    return out.payload[0]


# --- Numbers are never odd: their text is kept ------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b'"v":0.0007427441630921683',  # Python's repr of a small float: 19 digits after the point
        b'"v":1e-19',  # 19 in an exponent
        b'"id": "12345678901234567890"',  # digits in a string are nothing odd
        b'"v":12345678901234567890',  # a true integer beyond 63 bits: kept as received
        b'"v":123456789012345678901234567890',  # beyond 64 bits
        b'"v":[1.0,1E5,-0.0,0.10000000000000001,2.50]',
        b'"a":-1e+9999,"b":123123e100000,"c":123e-10000000',  # beyond double range
    ],
)
def test_number_tokens_stay_in_bulk_with_their_text(tmp_path, payload):
    record = b"{" + COMMON + b"," + payload + b"}"
    row = bulk_row(tmp_path, record)
    assert row["vouched"]
    assert row["payload"] == "{" + payload.decode() + "}"
    assert python_payload(record) == row["payload"]


# --- The odd-text rules, token by token --------------------------------------------------------


@pytest.mark.parametrize(
    "odd, near_miss",
    [
        # NaN and Infinity in any spelling DuckDB accepts; as text, or inside a key, they are data
        (b'"v":NaN', b'"v":"NaN"'),
        (b'"v":[1,-Infinity]', b'"Infinity":[1,-1]'),
        (b'"v":inf', b'"info":"inf"'),
        (b'"v":{"w":nAn}', b'"v":{"w":"nAn"}'),
        # a trailing comma; inside a string it is text
        (b'"v":[1,2,]', b'"v":"[1,2,]"'),
        (b'"v":{"a":1 , }', b'"v":"{a:1 , }"'),
        # a common field's name as a token (given twice, or nested); inside a string it is text
        (b'"event_uuid":"again"', b'"s":"\\"event_uuid\\":\\"again\\""'),
        (b'"m":{"created_at":2}', b'"m":{"created_at_ms":2}'),
        (b'"v":["event_name"]', b'"v":["event_name:x"]'),
        # an escaped letter or underscore in a key (it could spell a common field); elsewhere it is data
        (b'"event\\u005fuuid":"again"', b'"v":"event\\u005fuuid"'),
        (b'"\\u006b":1', b'"caf\\u00e9":1'),
    ],
)
def test_each_odd_text_rule_and_its_near_miss(tmp_path, odd, near_miss):
    assert not bulk_row(tmp_path, b"{" + COMMON + b"," + odd + b"}")["plain"]
    row = bulk_row(tmp_path, b"{" + COMMON + b"," + near_miss + b"}")
    assert row["vouched"] and row["payload"] == "{" + near_miss.decode() + "}"


def test_nesting_at_the_limit_stays_in_bulk_and_one_more_level_is_handed_over(tmp_path):
    def nested(depth: int) -> bytes:  # the record's own braces are level 1
        return b"{" + COMMON + b',"p":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"

    assert bulk_row(tmp_path, nested(MAX_NESTING))["vouched"]
    assert not bulk_row(tmp_path, nested(MAX_NESTING + 1))["plain"]
    # brackets inside strings are not nesting
    assert bulk_row(tmp_path, b"{" + COMMON + b',"s":"' + b"[{" * 2 * MAX_NESTING + b'"}')["vouched"]
    assert nesting_depth(nested(MAX_NESTING).decode()) == MAX_NESTING
    assert nesting_depth('{"a":"[[[[","b":[{"c":[]}]}') == 4


def test_the_common_members_in_other_layouts_are_left_to_the_careful_parser(tmp_path):
    scattered = b'{"event_uuid":"u","a":1,"event_name":"x","created_at":1}'
    assert not bulk_row(tmp_path, scattered)["plain"]
    assert python_payload(scattered) == '{"a":1}'
    for record in (b'{"event_uuid":"caf\\u00e9","event_name":"x","created_at":1}',  # an escape in a value
                   b'{"event_uuid":"u","event_name":"x","created_at":-0.0}'):  # a signed number
        assert not bulk_row(tmp_path, record)["plain"]


# --- The payload cut: the shortcut, the walk and DuckDB agree, on any layout --------------------

_WS = st.text(alphabet=" \t\n\r", max_size=3)
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_COMMON_VALUES = {"event_uuid": '"u-1"', "event_name": '"a:b"', "created_at": "1700000000.5"}


@st.composite
def objects(draw) -> tuple[str, str, str]:
    """A JSON object's text with the common members among others (first, last, or anywhere), its
    payload as the contract defines it (the kept members, each with the separator that followed
    it, the last one followed by the whitespace that closed the object), and the layout."""
    others = draw(st.lists(st.tuples(st.text(max_size=5).filter(lambda k: k not in _COMMON_VALUES), _VALUES),
                           max_size=5))
    members = [(json.dumps(k, ensure_ascii=draw(st.booleans())), json.dumps(v), False) for k, v in others]
    layout = draw(st.sampled_from(["head", "tail", "anywhere"]))
    commons = [(f'"{name}"', value, True) for name, value in draw(st.permutations(list(_COMMON_VALUES.items())))]
    if layout == "anywhere":
        for member in commons:
            members.insert(draw(st.integers(0, len(members))), member)
    else:
        members = commons + members if layout == "head" else members + commons
    seps = [draw(_WS) + "," + draw(_WS) for _ in members[1:]]
    inner = [draw(_WS) + k + draw(_WS) + ":" + draw(_WS) + v for k, v, _ in members]
    lead, close = draw(_WS), draw(_WS)
    text = "{" + lead + "".join(m + s for m, s in zip(inner, seps + [""])) + close + "}"
    kept = [i for i, (_, _, common) in enumerate(members) if not common]
    if not kept:
        return text, "{}", layout
    bare = [m.lstrip(" \t\n\r") for m in inner]  # key to value
    gaps = [seps[i] + inner[i + 1][: len(inner[i + 1]) - len(bare[i + 1])] for i in range(len(seps))]
    parts = ["{", lead + inner[0][: len(inner[0]) - len(bare[0])]]
    for i in kept[:-1]:
        parts.append(bare[i] + gaps[i])
    parts.append(bare[kept[-1]] + close + "}")
    return text, "".join(parts), layout


@settings(max_examples=300, deadline=None, database=None)
@given(objects())
def test_the_payload_is_the_record_without_its_common_members(case):
    text, want, layout = case
    assert payload_text(text) == want
    assert fast_payload(text) in (None, want)
    if layout != "anywhere" and "event_" not in want and "created_at" not in want:
        assert fast_payload(text) == want
    json.loads(want)  # a JSON object


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(objects(), min_size=1, max_size=8))
@pytest.mark.heavy
def test_duckdb_cuts_the_payload_exactly_as_python_does(tmp_path, cases):
    path = tmp_path / "000000"
    path.write_text("\n".join(text for text, _, _ in cases), encoding="utf-8")
    con = duckdb.connect()
    try:
        rows, failed = bulk.read(con, [path], "unstructured")
    finally:
        con.close()
    assert not failed and rows.height == len(cases)
    for (text, want, layout), row in zip(cases, rows.iter_rows(named=True)):
        assert row["plain"] or layout == "anywhere"
        if row["plain"]:
            assert row["payload"] == want
            assert bulk.record_text(row["cut"], row["payload"]) == text
