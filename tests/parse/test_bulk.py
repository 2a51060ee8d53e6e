"""The bulk (DuckDB) parser gives the Python parser's records, handing over only what it can't
vouch for: single records, or the span around a record DuckDB can't read, never a whole
object that can be decompressed."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lake_pipeline.devtools.synthetic import generate
from lake_pipeline.parse import reader
from lake_pipeline.storage.objects import LocalStorage
from tests.parse.parity import framings, same_parse, write_objects

CASES = Path(__file__).parent.parent / "cases"
GOOD = b'{"event_uuid":"g%d","event_name":"x:y","created_at":1.5,"n":{"a":[1,{"b":null}]}}'


def good(i: int) -> bytes:
    return GOOD % i


def test_every_contract_case_parses_as_the_python_parser_does(tmp_path):
    root = tmp_path / "cases"
    shutil.copytree(CASES, root, ignore=shutil.ignore_patterns("*.expected.json", "*.py"))
    bulk, handed = same_parse(root)
    assert bulk.records.height > 100 and bulk.quarantine.height > 60
    assert handed.whole_objects == 4  # the four gzip objects that can't be decompressed, and only they


# RFC 8259's edge cases, and what DuckDB reads differently from strict JSON. Each record stands
# between good records, in every framing.
EDGE = {
    # numbers
    "leading_zero": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":01}',
    "plus_sign": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":+1}',
    "bare_fraction": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":.5}',
    "bare_point": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":1.}',
    "bare_exponent": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":1e}',
    "signed_exponent_only": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":1e+}',
    "minus_only": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":-}',
    "hex": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":0x10}',
    "two_points": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":1.5.3}',
    "double_minus": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":--1}',
    "nan": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":NaN}',
    "nan_lower": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":nan}',
    "infinity": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":-Infinity}',
    "inf_lower": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":inf}',
    "created_at_nan": b'{"event_uuid":"e","event_name":"x","created_at":NaN}',
    "created_at_inf_lower": b'{"event_uuid":"e","event_name":"x","created_at":inf}',
    "beyond_double": b'{"event_uuid":"e","event_name":"x","created_at":1,"a":-1e+9999,"b":123123e100000,"c":123e-10000000}',
    "created_at_beyond_double": b'{"event_uuid":"e","event_name":"x","created_at":1e400}',
    "created_at_underflow": b'{"event_uuid":"e","event_name":"x","created_at":123e-10000000}',
    "created_at_negative_zero": b'{"event_uuid":"e","event_name":"x","created_at":-0.0}',
    "created_at_minus_zero_int": b'{"event_uuid":"e","event_name":"x","created_at":-0}',
    "created_at_wide_int": b'{"event_uuid":"e","event_name":"x","created_at":12345678901234567890}',
    "created_at_long_int": b'{"event_uuid":"e","event_name":"x","created_at":' + b"9" * 5000 + b"}",
    "created_at_exponent": b'{"event_uuid":"e","event_name":"x","created_at":1.7E9}',
    "created_at_many_digits": b'{"event_uuid":"e","event_name":"x","created_at":1700000000.1234567890123456789}',
    "wide_int": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":123456789012345678901234}',
    "long_int": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":-' + b"7" * 5000 + b"}",
    "long_int_elsewhere": b'{"a":1,"event_uuid":"e","b":' + b"7" * 5000 + b',"event_name":"x","created_at":1}',
    "small_float": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":0.0007427441630921683,"w":1e-19}',
    "number_texts": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":[1.0,1E5,-0.0,0.10000000000000001]}',
    # strings
    "unterminated": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"abc}',
    "raw_tab": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"a\tb"}',
    "raw_control": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"a\x01b"}',
    "raw_del": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"a\x7fb"}',
    "bad_escape": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\x41"}',
    "quote_escape": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\\'"}',
    "short_unicode_escape": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\u12"}',
    "bad_unicode_escape": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\uZZZZ"}',
    "lone_high_surrogate": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\ud800"}',
    "lone_low_surrogate": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\udc00x"}',
    "reversed_surrogates": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\udc00\\ud800"}',
    "surrogate_pair": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\\ud83d\\ude00"}',
    "surrogate_in_uuid": b'{"event_uuid":"e\\ud800","event_name":"x","created_at":1}',
    "surrogate_in_name": b'{"event_uuid":"e","event_name":"x\\udfff","created_at":1}',
    "escaped_nul": b'{"event_uuid":"a\\u0000","event_name":"x","created_at":1,"v":"\\u0000"}',
    "escapes_kept": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"caf\\u00e9 \\/ \\n \\"q\\" \\\\"}',
    "escaped_uuid": b'{"event_uuid":"caf\\u00e9","event_name":"\\u0070age:view","created_at":1}',
    "digits_in_string": b'{"event_uuid":"e","event_name":"x","created_at":1,"id":"12345678901234567890","s":"1e-19"}',
    "noncharacter": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\xef\xbf\xbe"}',
    "overlong_utf8": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\xc0\xaf"}',
    "utf8_surrogate": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\xed\xa0\x80"}',
    "utf8_beyond_unicode": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\xf4\x90\x80\x80"}',
    "utf8_truncated": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"\xe6\x97"}',
    "utf8_outside_string": b'{"event_uuid":"e",\xc3\x28"event_name":"x","created_at":1}',
    "braces_in_string": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"}{\\"event_uuid\\":\\"f\\"}{"}',
    "newline_escape_in_string": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"a\\nb}\\n{c"}',
    # keys
    "number_key": b'{"event_uuid":"e","event_name":"x","created_at":1,1:2}',
    "single_quotes": b"{'event_uuid':'e','event_name':'x','created_at':1}",
    "unquoted_key": b'{"event_uuid":"e","event_name":"x","created_at":1,v:2}',
    "missing_colon": b'{"event_uuid":"e","event_name":"x","created_at":1,"v" 2}',
    "empty_key": b'{"event_uuid":"e","event_name":"x","created_at":1,"":2}',
    "payload_key_twice": b'{"event_uuid":"e","event_name":"x","created_at":1,"k":1,"k":2}',
    "common_field_twice": b'{"event_uuid":"e","event_name":"x","created_at":1,"event_uuid":"f"}',
    "escaped_common_key": b'{"event_uuid":"e","event_name":"x","created_at":1,"event\\u005fuuid":"f"}',
    "escaped_payload_key": b'{"event_uuid":"e","event_name":"x","created_at":1,"caf\\u00e9":1,"\\u006b":2}',
    "common_field_nested": b'{"event_uuid":"e","event_name":"x","created_at":1,"m":{"event_uuid":"f"}}',
    "common_fields_only_nested": b'{"m":{"event_uuid":"f","event_name":"x","created_at":1}}',
    "common_fields_last": b'{"a":[1,2],"event_uuid":"e","event_name":"x","created_at":1}',
    "common_fields_scattered": b'{"event_uuid":"e","a":1,"event_name":"x","b":2,"created_at":1}',
    "common_fields_spaced": b'{ "created_at" : 1 ,\n "event_name" : "x" , "event_uuid" : "e" , "a" : [ 1 , 2 ] }',
    "invalid_at_head": b'{ "event_uuid" : "" ,\t"event_name":"x",  "created_at":1 , "a" : 1 }',
    "invalid_at_tail": b'{"a": [1, 2] ,  "event_uuid": "e", "event_name": ":x", "created_at": 1\r\n}',
    "out_of_range_at_tail": b'{"a":1,"created_at":4102444800,"event_name":"x","event_uuid":"e"}',
    "invalid_only_commons": b'{"event_uuid":"e","event_name":"","created_at":1}',
    # structure
    "trailing_comma_array": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":[1,2,]}',
    "trailing_comma_object": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":{"a":1,}}',
    "trailing_comma_record": b'{"event_uuid":"e","event_name":"x","created_at":1,}',
    "trailing_comma_in_string": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":"[1,] {a,}"}',
    "double_comma": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":[1,,2]}',
    "leading_comma": b'{,"event_uuid":"e","event_name":"x","created_at":1}',
    "missing_comma": b'{"event_uuid":"e","event_name":"x","created_at":1 "v":2}',
    "unclosed": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":[1,{"a":2}',
    "extra_close": b'{"event_uuid":"e","event_name":"x","created_at":1}}',
    "mismatched_close": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":[1}]}',
    "empty_object": b"{}",
    "empty_array": b"[]",
    "array_of_records": b'[{"event_uuid":"e","event_name":"x","created_at":1}]',
    "scalars": b'42 "s" null true -1.5e3',
    "misspelled_literal": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":tru}',
    "capital_literal": b'{"event_uuid":"e","event_name":"x","created_at":1,"v":True}',
    "comment": b'{"event_uuid":"e","event_name":"x","created_at":1}/* c */',
    "line_comment": b'{"event_uuid":"e","event_name":"x","created_at":1}// c',
    # nesting, up to and past the limit (512 levels) and Python's recursion limit
    "depth_511": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":' + b"[" * 510 + b"]" * 510 + b"}",
    "depth_512": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":' + b"[" * 511 + b"]" * 511 + b"}",
    "depth_513": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":' + b'{"a":' * 512 + b"1" + b"}" * 512 + b"}",
    "depth_1000": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":' + b"[" * 999 + b"]" * 999 + b"}",
    "depth_5000": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":' + b"[" * 4999 + b"]" * 4999 + b"}",
    "depth_5000_cut": b'{"event_uuid":"e","p":' + b"[" * 5000,
    "many_brackets_shallow": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":[' + b",".join([b"[]"] * 700) + b"]}",
    "brackets_in_strings": b'{"event_uuid":"e","event_name":"x","created_at":1,"p":"' + b"[{" * 700 + b'"}',
    # framing
    "bom_before": b"\xef\xbb\xbf" + GOOD % 99,
    "vertical_tab": GOOD % 98 + b"\x0b",
    "form_feed": b"\x0c" + GOOD % 97,
    "nul": GOOD % 96 + b"\x00",
    "record_separator": GOOD % 95 + b"\x1e",
    "nbsp": b"\xc2\xa0" + GOOD % 94,
    "carriage_return_separator": GOOD % 93 + b"\r" + GOOD % 92,
    "pretty": json.dumps({"event_uuid": "e", "event_name": "x", "created_at": 1, "v": [1, {"a": None}]}, indent=2).encode(),
    "pretty_broken": b'{\n  "event_uuid": "e",\n  "event_name": oops,\n  "created_at": 1\n}',
    "whitespace_line": b" \t ",
    "truncated": GOOD[:30],
}


@pytest.fixture
def edge_zone(tmp_path) -> Path:
    objects: dict[str, bytes] = {}
    for name, record in EDGE.items():
        objects |= framings(name, [good(1), record, good(2), good(3)])
    return write_objects(tmp_path / "edge", objects)


@pytest.mark.heavy
def test_rfc_8259_edge_cases_parse_as_the_python_parser_does(edge_zone):
    bulk, handed = same_parse(edge_zone)
    assert handed.whole_objects == 0  # every object can be decompressed: none goes whole
    # the good records around each edge case always arrive
    for name in EDGE:
        for suffix in ("concat.gz", "concat", "lf", "crlf"):
            key = f"{name}.{suffix}"
            got = bulk.records.filter(bulk.records["_source_key"] == key).get_column("event_uuid").to_list()
            assert {"g1", "g2", "g3"} <= set(got), key
    assert handed.records < len(EDGE) * 4 * 4  # not every record of every object


def test_a_malformed_record_hands_over_its_span_not_its_object(tmp_path):
    """In concatenated JSON (Firehose's framing) and newline-delimited alike: the careful parser
    takes the span from the bad record to the next safe boundary."""
    records = [good(i) for i in range(2000)]
    records[700] = GOOD[:40]  # truncated in the middle of a concatenated object
    records[1400] = b'{"event_uuid":"bad","event_name":"x","created_at":1,"v":[1,,2]}'
    root = write_objects(tmp_path / "raw", framings("dirty", records))
    bulk, handed = same_parse(root)
    assert handed.whole_objects == 0 and handed.unit_objects == 4
    # each bad record's span (the window doubles until it reaches a safe boundary): a few records
    # per bad record, not the 2000 of its object
    assert handed.records <= 4 * 2 * 8
    assert bulk.quarantine.height == 8
    assert bulk.records.height == 4 * 1998


def test_odd_and_invalid_records_are_handed_over_one_by_one(tmp_path):
    records = [good(i) for i in range(3000)]
    records[10] = b'{"event_uuid":"","event_name":"x","created_at":1}'  # invalid: empty uuid
    records[20] = b'{"event_uuid":"o","event_name":"x","created_at":1,"v":NaN}'  # odd: NaN
    records[30] = b'{"a":1,"event_uuid":"l","b":2,"event_name":"x","created_at":1}'  # another layout
    root = write_objects(tmp_path / "raw", {"concat": b"".join(records), "lf": b"\n".join(records)})
    bulk, handed = same_parse(root)
    assert handed.records == 2 * 3 and handed.whole_objects == 0
    assert bulk.records.height == 2 * 2998 and bulk.quarantine.height == 2 * 2


def test_a_dirty_landing_zone_parses_the_same(tmp_path):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 6000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=300, seed=3, malformed=0.01)
    bulk, handed = same_parse(tmp_path / "raw")
    assert bulk.quarantine.height > 30
    assert handed.whole_objects == 0
    assert handed.records < bulk.records.height / 20


def test_records_keep_arrival_order_across_many_objects(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    for i in range(40):
        rows = [json.dumps({"event_uuid": f"{i}-{j}", "event_name": "a:b", "created_at": 1.0 + j}).encode() for j in range(50)]
        if i % 3 == 1:
            rows[7] = b"nope"
        body = b"\n".join(rows) if i % 4 == 0 else b"".join(rows)
        (root / f"k{i:03d}").write_bytes(gzip.compress(body) if i % 2 else body)
    bulk, _ = same_parse(root)
    want = [f"{i}-{j}" for i in range(40) for j in range(50) if not (i % 3 == 1 and j == 7)]
    assert bulk.records.get_column("event_uuid").to_list() == want


def test_an_unknown_parser_is_refused_naming_the_variable():
    from lake_pipeline.settings import load_settings

    with pytest.raises(ValueError, match="LAKE_PARSER must be one of duckdb, python"):
        load_settings({"LAKE_PARSER": "spark"})
    assert load_settings({"LAKE_PARSER": "python"}).parser == "python"


@pytest.mark.heavy
def test_objects_read_in_pieces_parse_the_same(edge_zone, tmp_path, monkeypatch):
    """A big concatenated object is staged in pieces cut between records (so DuckDB reads it on
    every core); a cut that lands inside a broken record only costs the object its bulk read."""
    monkeypatch.setattr(reader, "PIECE_BYTES", 150)
    records = [good(i) for i in range(300)]
    records[150] = GOOD[:45]
    records[151] = b'{"event_uuid":"s","event_name":"x","created_at":1,"v":"}{\\"k\\":1}{"}'
    write_objects(edge_zone, {"many.concat": b"".join(records), "many.gz": gzip.compress(b"".join(records[:140]))})
    storage = LocalStorage(str(edge_zone))
    staged, _ = reader._stage(storage.uri, list(storage.list()), tmp_path, 2)
    pieces = {s.key: len(s.paths) for s in staged}
    assert pieces["many.concat"] > 50 and pieces["many.gz"] > 50 and pieces["nan.lf"] == 1
    bulk, handed = same_parse(edge_zone)
    assert handed.whole_objects == 0
    assert bulk.records.filter(bulk.records["_source_key"] == "many.gz").height == 140
