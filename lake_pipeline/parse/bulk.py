"""The bulk parser: DuckDB reads and splits whole raw objects, in C++, on every core.

It is the fast path for clean objects. It produces exactly the columns the Python
parser (`careful.py`) produces, and it only keeps an object when it is sure
the Python parser would give the same records. Every other object is *rejected* and
goes to the Python parser, which quarantines what needs quarantining. So the bulk
parser never decides what is valid; it only recognises what is plainly valid.

An object is rejected when:
- DuckDB can't read it at all (corrupt gzip, malformed JSON, invalid UTF-8, a record
  over the size limit): DuckDB's error names the file;
- any record in it is not plainly valid: not an object, a common field missing or of
  the wrong type, an empty uuid or event type, created_at out of range;
- any record's text holds something DuckDB reads differently from strict JSON: a run
  of 19+ digits (integers orjson can't hold), a trailing comma, a NaN/Infinity
  literal, an escaped NUL, a key with escaped letters, or one of the common fields
  given twice; or 255 or more opening brackets (nesting the Python parser may refuse);
- the object holds a byte DuckDB skips as whitespace but JSON doesn't (``\\v``, ``\\f``),
  or a NUL (checked by the caller, which has the bytes: `ChunkParser.parse_bulk` in reader.py).

Known difference: a payload key given twice (``{"a":1,"a":2}``) is kept twice, as
received, where the Python parser keeps the last value. Both read back the same
with Python's ``json``; DuckDB's ``->>`` reads the first.

Arrival order is kept: DuckDB preserves the file list's order and each file's record
order (``preserve_insertion_order``), and the record's position in its object is its
row number within the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from lake_pipeline.contract import (
    CREATED_AT,
    EVENT_NAME,
    EVENT_UUID,
    FIELD_JSON_TYPES,
    ORDINAL,
    SOURCE_KEY,
    valid_fields_expr,
)
from lake_pipeline.parse.records import RECORD_SCHEMA, ParsedRecords

# A record matching this is handed to the Python parser (see the module docstring).
_ODD = (
    r'[0-9]{19}|,\s*[}\]]|[:\[,]\s*-?(?:[nN][aA][nN]|[iI][nN][fF])|\\u0000|\\u00[4-7][0-9a-fA-F][^"]*"\s*:'
    r'|"event_uuid"\s*:.*"event_uuid"\s*:|"event_name"\s*:.*"event_name"\s*:|"created_at"\s*:.*"created_at"\s*:'
)

# DuckDB's json_type names for the contract's JSON types (a boolean is BOOLEAN, not a number).
_DUCKDB_JSON_TYPES = {"string": ("VARCHAR",), "number": ("DOUBLE", "BIGINT", "UBIGINT")}
_FIELDS = (EVENT_UUID, EVENT_NAME, CREATED_AT)  # v[1], v[2], v[3] below
_JSON_TYPES_SQL = " AND ".join(
    f"json_type(v[{i}]) IN ({', '.join(repr(t) for t in _DUCKDB_JSON_TYPES[FIELD_JSON_TYPES[name]])})"
    for i, name in enumerate(_FIELDS, start=1)
)

_SQL = f"""
SELECT filename,
       v[1] ->> '$' AS {EVENT_UUID},
       v[2] ->> '$' AS {EVENT_NAME},
       TRY_CAST(v[3] AS DOUBLE) AS {CREATED_AT},
       json_merge_patch(json, '{{"{EVENT_UUID}":null,"{EVENT_NAME}":null,"{CREATED_AT}":null}}') AS payload,
       {_JSON_TYPES_SQL}
         AND NOT regexp_matches(json, '{_ODD}')
         AND CASE WHEN strlen(json) < 510 THEN true  -- CASE: only long records pay for the count
                  ELSE strlen(json) - strlen(replace(replace(json, '{{', ''), '[', '')) < 255 END AS plain
FROM (
  SELECT filename, json, json_extract(json, [{', '.join(f"'$.{name}'" for name in _FIELDS)}]) AS v
  FROM read_json_objects($files, format = 'unstructured', compression = 'none', filename = true)
)
"""

_FILE_IN_ERROR = re.compile(r'in file "(.+?)"')
# After this many failed whole-list reads, the remaining files are read one by one.
_RETRIES = 3

def parse_files(files: list[tuple[str, Path]], threads: int | None = None) -> tuple[ParsedRecords, list[str]]:
    """Parse local, uncompressed files (``(key, path)`` in key order) with DuckDB; see the
    module docstring. Returns the records of the objects it accepted (no quarantine: it
    accepts only plainly valid objects; ``sizes`` are left to the caller) and the keys it
    rejected, in key order, for the Python parser. Gzip is undone before
    (`ChunkParser.parse_bulk` in reader.py): DuckDB's gzip reader doesn't verify the CRC, and a corrupt
    object must be quarantined."""
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        frame, rejected = _read(con, files)
    finally:
        con.close()
    order = {key: i for i, (key, _) in enumerate(files)}
    path_key = {str(path): key for key, path in files}
    frame = frame.with_columns(pl.col("filename").replace_strict(path_key, return_dtype=pl.String).alias(SOURCE_KEY))
    # An object with any record that is not plainly valid goes to the Python parser.
    unplain = ~pl.col("plain").fill_null(False) | ~valid_fields_expr(
        pl.col(EVENT_UUID), pl.col(EVENT_NAME), pl.col(CREATED_AT)
    )
    flagged = set(frame.filter(unplain).get_column(SOURCE_KEY).unique().to_list())
    if flagged:
        frame = frame.filter(~pl.col(SOURCE_KEY).is_in(list(flagged)))
        rejected += flagged
    index = pl.col(SOURCE_KEY).replace_strict(order, return_dtype=pl.Int64)
    if not frame.select(index.is_sorted()).item():  # a guard: DuckDB keeps the file order
        frame = frame.clear()
        rejected = [key for key, _ in files]
    frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over(SOURCE_KEY).alias(ORDINAL))
    counts = dict(frame.group_by(SOURCE_KEY).len().iter_rows())
    rejected_set = set(rejected)
    accepted = {key: counts.get(key, 0) for key, _ in files if key not in rejected_set}
    records = frame.select(RECORD_SCHEMA.names()).cast(dict(RECORD_SCHEMA))
    return ParsedRecords(records, records_per_object=accepted), sorted(rejected_set, key=order.__getitem__)


def _read(con: duckdb.DuckDBPyConnection, group: list[tuple[str, Path]]) -> tuple[pl.DataFrame, list[str]]:
    """Read ``group`` in one query; a file DuckDB can't read is dropped (rejected) and the rest re-read."""
    remaining = list(group)
    rejected: list[str] = []
    failures = 0
    while remaining:
        try:
            table = con.sql(_SQL, params={"files": [str(p) for _, p in remaining]})
            return pl.from_arrow(table.to_arrow_table()), rejected
        except duckdb.Error as exc:
            failures += 1
            match = _FILE_IN_ERROR.search(str(exc))
            bad = [kp for kp in remaining if match and str(kp[1]) == match.group(1)]
            if not bad or failures > _RETRIES:
                break
            rejected += [k for k, _ in bad]
            remaining = [kp for kp in remaining if kp not in bad]
    # Many unreadable files (or an error that names none): one query per file.
    frames = [_empty()]
    for key, path in remaining:
        try:
            table = con.sql(_SQL, params={"files": [str(path)]})
            frames.append(pl.from_arrow(table.to_arrow_table()))
        except duckdb.Error:
            rejected.append(key)
    return pl.concat(frames), rejected


def _empty() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"filename": pl.String, EVENT_UUID: pl.String, EVENT_NAME: pl.String, CREATED_AT: pl.Float64,
                "payload": pl.String, "plain": pl.Boolean}
    )
