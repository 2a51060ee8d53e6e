"""The bulk (DuckDB) parser gives the Python parser's records, handing over only what it can't vouch for."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from lake_pipeline.parse import reader
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
    assert bulk.records.schema == python.records.schema
    for column in python.records.columns:
        assert bulk.records.get_column(column).to_list() == python.records.get_column(column).to_list(), column
    assert bulk.quarantine.to_dicts() == python.quarantine.to_dicts()
    assert bulk.records_per_object == python.records_per_object
    assert bulk.sizes == python.sizes == {o.key: o.size for o in objects}
    return bulk


def test_every_contract_case_parses_as_the_python_parser_does(tmp_path):
    root = tmp_path / "cases"
    shutil.copytree(CASES, root, ignore=shutil.ignore_patterns("*.expected.json", "*.py"))
    bulk = _same_parse(root)
    assert bulk.records.height > 50 and bulk.quarantine.height > 50
