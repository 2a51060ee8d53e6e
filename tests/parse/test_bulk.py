"""The bulk (DuckDB) parser gives the Python parser's records, or hands the object over."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline.parse import reader
from lake_pipeline.parse.bulk import parse_files
from lake_pipeline.parse.records import ParsedRecords
from lake_pipeline.storage.objects import LocalStorage
from lake_pipeline.devtools.synthetic import generate

CASES = Path(__file__).parent.parent / "cases"


def _same_parse(root: Path) -> ParsedRecords:
    """Parse ``root`` both ways; assert the results are the same; return the bulk result."""
    storage = LocalStorage(str(root))
    objects = list(storage.list())
    with reader.ChunkParser(storage.uri) as parser:
        bulk = parser.parse_bulk(objects)
    python = reader.parse_keys(storage.uri, [o.key for o in objects])
    got, want = bulk.records, python.records
    assert got.schema == want.schema
    for column in ("event_uuid", "event_name", "created_at", "_source_key", "_ordinal"):
        assert got.get_column(column).to_list() == want.get_column(column).to_list(), column
    # Payload text may differ in number spelling (1e+20 vs 100000000000000000000.0); the values may not.
    assert [json.loads(p) for p in got.get_column("payload")] == [json.loads(p) for p in want.get_column("payload")]
    assert bulk.quarantine.equals(python.quarantine)
    assert bulk.records_per_object == python.records_per_object
    assert bulk.sizes == python.sizes == {o.key: o.size for o in objects}
    return bulk


def test_every_contract_case_parses_as_the_python_parser_does(tmp_path):
    root = tmp_path / "cases"
    shutil.copytree(CASES, root, ignore=shutil.ignore_patterns("*.expected.json", "*.py"))
    bulk = _same_parse(root)
    assert bulk.records.height > 50 and bulk.quarantine.height > 50


# Records DuckDB reads differently from strict JSON, each alone in an object.
ODD = {
    "nan": b'{"event_uuid":"a","event_name":"x","created_at":1,"v":NaN}',
    "infinity": b'{"event_uuid":"a","event_name":"x","created_at":1,"v":-Infinity}',
    "trailing_comma": b'{"event_uuid":"a","event_name":"x","created_at":1,"v":[1,2,],}',
    "wide_int": b'{"event_uuid":"a","event_name":"x","created_at":1,"v":123456789012345678901234}',
    "escaped_key": b'{"event_uuid":"a","event_name":"x","created_at":1,"event\\u005fuuid":"b"}',
    "common_field_twice": b'{"event_uuid":"a","event_name":"x","created_at":1,"event_uuid":"b"}',
    "vertical_tab": b'{"event_uuid":"a","event_name":"x","created_at":1}\x0b',
    "form_feed": b'\x0c{"event_uuid":"a","event_name":"x","created_at":1}',
    "escaped_nul": b'{"event_uuid":"a\\u0000","event_name":"x","created_at":1}',
    "deep": b'{"event_uuid":"a","event_name":"x","created_at":1,"v":' + b"[" * 1100 + b"]" * 1100 + b"}",
    "created_at_string": b'{"event_uuid":"a","event_name":"x","created_at":"1"}',
    "created_at_huge": b'{"event_uuid":"a","event_name":"x","created_at":1e400}',
    "created_at_bool": b'{"event_uuid":"a","event_name":"x","created_at":true}',
    "created_at_2100": b'{"event_uuid":"a","event_name":"x","created_at":4102444800}',
    "empty_type": b'{"event_uuid":"a","event_name":":x","created_at":1}',
    "uuid_number": b'{"event_uuid":5,"event_name":"x","created_at":1}',
    "bad_crc": None,  # filled below
}


@pytest.fixture
def odd_objects(tmp_path) -> Path:
    root = tmp_path / "odd"
    root.mkdir()
    good = b'{"event_uuid":"g","event_name":"x:y","created_at":1.5,"n":{"a":[1,{"b":null}]}}'
    for name, record in ODD.items():
        if record is None:
            data = bytearray(gzip.compress(good + good))
            data[-8] ^= 0xFF  # CRC32 of the member
            (root / name).write_bytes(bytes(data))
        else:
            (root / name).write_bytes(good + record + b"\n" + good)
    (root / "zz_clean").write_bytes(gzip.compress(good.replace(b'"g"', b'"c1"') + good.replace(b'"g"', b'"c2"')))
    return root


def test_objects_duckdb_reads_differently_go_to_the_python_parser(odd_objects):
    # (gzip, \v, \f and NUL are checked by ChunkParser.parse_bulk, which has the bytes)
    skip = ("bad_crc", "zz_clean", "vertical_tab", "form_feed")
    files = [(p.name, p) for p in sorted(odd_objects.iterdir()) if p.name not in skip]
    bulk, rejected = parse_files(files)
    assert set(rejected) == {name for name, _ in files}  # every odd object is handed over
    assert bulk.records.height == 0
    got = _same_parse(odd_objects)  # and the batch as a whole parses as the Python parser does
    assert got.records_per_object["zz_clean"] == 2
    assert got.records_per_object["bad_crc"] == 1
    quarantined = set(got.quarantine.get_column("source_key"))
    assert {"bad_crc", "nan", "infinity", "trailing_comma", "vertical_tab", "created_at_bool", "empty_type"} <= quarantined
    valid = got.records.filter(pl.col("_source_key") == "common_field_twice")
    assert "b" in valid.get_column("event_uuid").to_list()  # the last value wins, as in the Python parser


def test_a_dirty_landing_zone_parses_the_same_and_keeps_clean_objects_in_bulk(tmp_path):
    storage = LocalStorage(str(tmp_path / "raw"))
    generate(storage, 6000, start=datetime(2025, 11, 20, 13, tzinfo=UTC), object_seconds=300, seed=3, malformed=0.002)
    bulk = _same_parse(tmp_path / "raw")
    files = [(o.key, storage.root / o.key) for o in storage.list()]
    plain = [(k, p) for k, p in files if p.read_bytes()[:2] != b"\x1f\x8b"]
    assert bulk.quarantine.height > 0
    assert not plain or len(parse_files(plain)[1]) < len(plain)


def test_records_keep_arrival_order_across_many_objects(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    for i in range(40):
        rows = b"".join(
            json.dumps({"event_uuid": f"{i}-{j}", "event_name": "a:b", "created_at": 1.0 + j}).encode() for j in range(50)
        )
        (root / f"k{i:03d}").write_bytes(gzip.compress(rows) if i % 2 else rows)
    bulk = _same_parse(root)
    assert bulk.records.get_column("event_uuid").to_list() == [f"{i}-{j}" for i in range(40) for j in range(50)]


def test_an_unknown_parser_is_refused_naming_the_variable():
    from lake_pipeline.settings import load_settings

    with pytest.raises(ValueError, match="LAKE_PARSER must be one of duckdb, python"):
        load_settings({"LAKE_PARSER": "spark"})
    assert load_settings({"LAKE_PARSER": "python"}).parser == "python"
