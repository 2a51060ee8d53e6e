"""Helpers for the parity tests: parse a landing zone with the bulk parser and with the Python
parser, and require the same result (helpers, not tests)."""

from __future__ import annotations

import gzip
from pathlib import Path

from lake_pipeline.parse import reader
from lake_pipeline.parse.records import ParsedRecords
from lake_pipeline.storage.objects import LocalStorage


def write_objects(root: Path, objects: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in objects.items():
        (root / name).write_bytes(data)
    return root


def same_parse(root: Path) -> tuple[ParsedRecords, reader.HandedOver]:
    """Parse ``root`` both ways; assert the results are identical; return the bulk result and
    what the bulk parser handed over."""
    storage = LocalStorage(str(root))
    objects = list(storage.list())
    with reader.ChunkParser(storage.uri) as parser:
        bulk = parser.parse_bulk(objects)
    python = reader.parse_keys(storage.uri, [o.key for o in objects])
    assert_same(bulk, python)
    assert bulk.sizes == {o.key: o.size for o in objects}
    return bulk, parser.handed_over


def assert_same(got: ParsedRecords, want: ParsedRecords) -> None:
    assert got.records.schema == want.records.schema
    for column in want.records.columns:  # column by column: a failure names the column
        assert got.records.get_column(column).to_list() == want.records.get_column(column).to_list(), column
    # created_at bit for bit (0.0 and -0.0 compare equal)
    assert got.records.get_column("created_at").to_physical().cast(str).to_list() == \
        want.records.get_column("created_at").to_physical().cast(str).to_list()
    assert got.quarantine.to_dicts() == want.quarantine.to_dicts()
    assert got.records_per_object == want.records_per_object
    assert got.sizes == want.sizes


def framings(name: str, records: list[bytes]) -> dict[str, bytes]:
    """The same records as Firehose writes them (concatenated, gzip), newline-delimited (LF and
    CRLF) and concatenated on one plain line."""
    return {
        f"{name}.concat.gz": gzip.compress(b"".join(records), mtime=0),
        f"{name}.concat": b"".join(records),
        f"{name}.lf": b"\n".join(records) + b"\n",
        f"{name}.crlf": b"\r\n".join(records),
    }
