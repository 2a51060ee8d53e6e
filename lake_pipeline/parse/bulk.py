"""The bulk parser: DuckDB reads and splits raw objects, in C++, on every core, and vouches for
the records it reads plainly.

For each record DuckDB reads it gives one row: the record's exact text, and whether it is
*plain*: a JSON object that opens (or closes) with the three common members, with plain values
(`text.HEAD`, `text.TAIL`), and a payload with nothing DuckDB reads differently from strict
JSON (`text.ODD`) nested at most MAX_NESTING deep. For a plain record it also gives the common
fields (their JSON types checked as `contract.FIELD_JSON_TYPES` says) and the payload, cut out
of the record's text exactly as the Python parser cuts it. :func:`vouched` then applies the
contract's validity rule (`contract.valid_fields_expr`). Every other record goes to the Python
parser (`handover.py` decides how much of its object goes with it).

Two framings:
- ``unstructured``: DuckDB splits the records itself (concatenated, newline-delimited or
  pretty-printed); a file with anything it can't read fails as a whole, and the error names it;
- ``lines``: one row per line that isn't blank (blank: only spaces, tabs, ``\\r``, ``\\v``,
  ``\\f``), the record's text NULL where DuckDB can't read the line; a file never fails.

Arrival order is kept: DuckDB preserves the file list's order and each file's record order
(``preserve_insertion_order``), so a row's position within its object is its record's position.
Files are named by their object's index and the piece (:func:`piece_name`); rows carry the
object's index.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import polars as pl

from lake_pipeline.contract import (
    CREATED_AT,
    EVENT_NAME,
    EVENT_UUID,
    FIELD_JSON_TYPES,
    MAX_NESTING,
    valid_fields_expr,
)
from lake_pipeline.parse.text import CANON, HEAD, ODD, STRING, TAIL

PIECE_DIGITS = 3  # a staged file's name: its object's index, then the piece in 3 digits


def piece_name(index: int, piece: int = 0) -> str:
    """The name of a file :func:`read` takes: piece ``piece`` of the chunk's object ``index``."""
    return f"{index:06d}{piece:0{PIECE_DIGITS}d}"


def object_index(path: Path) -> int:
    return int(path.name) // 10**PIECE_DIGITS

# How a common member's value token is recognised as each contract JSON type (HEAD/TAIL only
# take strings without escapes and numbers without a sign).
_TOKEN_TYPE_SQL = {"string": "{tok} LIKE '\"%'", "number": "{tok} NOT LIKE '\"%'"}
_FIELDS = (EVENT_UUID, EVENT_NAME, CREATED_AT)
_HEAD_GROUPS = ["cut", "lead", "k1", "v1", "k2", "v2", "k3", "v3", "close"]
_TAIL_GROUPS = ["cut", "k1", "v1", "k2", "v2", "k3", "v3", "close"]
_WS_CHARS = "' ' || chr(9) || chr(10) || chr(13)"


def _sql_literal(pattern: str) -> str:
    assert "'" not in pattern
    return f"'{pattern}'"


def _token(field: str, s: str) -> str:
    """SQL: the value token of ``field`` among the members matched into struct ``s`` (HEAD, TAIL)."""
    return f"CASE '{field}' WHEN {s}.k1 THEN {s}.v1 WHEN {s}.k2 THEN {s}.v2 WHEN {s}.k3 THEN {s}.v3 END"


def _fits(s: str) -> str:
    """SQL: the members matched into ``s`` are the three common fields, of their JSON types."""
    types = " AND ".join(_TOKEN_TYPE_SQL[FIELD_JSON_TYPES[f]].format(tok=_token(f, s)) for f in _FIELDS)
    return f"{s}.k1 <> {s}.k2 AND {s}.k1 <> {s}.k3 AND {s}.k2 <> {s}.k3 AND {types}"


def _canon_parts() -> dict[str, int]:
    """Which ``split_part(cut, '"', n)`` holds each field's value in a CANON match (strings have no
    quotes inside; a number's part also holds the ':' and ',' around it)."""
    sample = "{" + ",".join(f'"{f}":' + ('"v"' if FIELD_JSON_TYPES[f] == "string" else "0") for f in _FIELDS) + ',"'
    parts = sample.split('"')
    return {f: parts.index(f) + (3 if FIELD_JSON_TYPES[f] == "string" else 2) for f in _FIELDS}


def _value(field: str) -> str:
    """SQL: the field's value, from whichever layout matched."""
    part = f"split_part(c, '\"', {_canon_parts()[field]})"
    if FIELD_JSON_TYPES[field] == "string":
        canon = part
        general = [f"substr({_token(field, s)}, 2, length({_token(field, s)}) - 2)" for s in ("h", "t")]
    else:
        canon = f"TRY_CAST(trim({part}, {_WS_CHARS} || ':,}}') AS DOUBLE)"
        general = [f"TRY_CAST({_token(field, s)} AS DOUBLE)" for s in ("h", "t")]
    return f"CASE WHEN c <> '' THEN {canon} WHEN h.cut <> '' THEN {general[0]} ELSE {general[1]} END"


def _brackets(text: str) -> str:
    """SQL: the opening brackets in ``text`` (a bound on its nesting depth)."""
    return f"strlen({text}) - strlen(replace(replace({text}, '{{', ''), '[', ''))"


_SQL = f"""
WITH raw AS (
  SELECT CAST(parse_filename(filename) AS INTEGER) // {10**PIECE_DIGITS} AS file, json
  FROM read_json_objects($files, format = '@FORMAT@', compression = 'none', filename = true@OPTIONS@)
), canon AS (  -- the usual layout first: one pass of a regex with no alternation
  SELECT file, json, regexp_extract(json, {_sql_literal(CANON)}, 0) AS c FROM raw
), head AS (
  SELECT file, json, c, CASE WHEN c = '' THEN regexp_extract(json, {_sql_literal("^(" + HEAD[1:] + ")")},
                                                           {_HEAD_GROUPS}) END AS h
  FROM canon
), cut AS (
  SELECT file, json, c, h, CASE WHEN c = '' AND h.cut = '' THEN regexp_extract(
                             json, {_sql_literal("(" + TAIL + ")$")}, {_TAIL_GROUPS}) END AS t
  FROM head
), members AS (
  SELECT file, json,
         CASE WHEN c <> '' THEN c WHEN h.cut <> '' THEN h.cut ELSE t.cut END AS cut,
         CASE WHEN c <> '' THEN true WHEN h.cut <> '' THEN {_fits("h")} WHEN t.cut <> '' THEN {_fits("t")} END AS fits,
         CASE WHEN c LIKE '%}}' OR h.close LIKE '%}}' THEN '{{}}'
              WHEN c <> '' THEN '{{' || substr(split_part(c, '"', 1), 2) || substr(json, length(c))  -- from the next key's quote
              WHEN h.cut <> '' THEN '{{' || h.lead || substr(json, length(h.cut))
              WHEN t.cut <> '' THEN substr(json, 1, length(json) - length(t.cut)) || t.close || '}}' END AS payload,
         {", ".join(f"{_value(f)} AS {f}" for f in _FIELDS)}
  FROM cut
), judged AS (
  SELECT *,
         coalesce(fits AND payload IS NOT NULL AND NOT regexp_matches(payload, {_sql_literal(ODD)})
                  AND CASE WHEN strlen(payload) <= {2 * MAX_NESTING} THEN true  -- only long ones pay for a count
                           WHEN {_brackets("payload")} <= {MAX_NESTING} THEN true
                           ELSE {_brackets(f"regexp_replace(payload, {_sql_literal(STRING)}, '', 'g')")} <= {MAX_NESTING}
                      END, false) AS plain
  FROM members
)
SELECT file, plain,
       CASE WHEN plain THEN NULL ELSE json END AS json,
       CASE WHEN plain THEN cut END AS cut,
       CASE WHEN plain THEN payload END AS payload,
       {", ".join(f"CASE WHEN plain THEN {f} END AS {f}" for f in _FIELDS)}
FROM judged
"""

ROW_SCHEMA = pl.Schema(
    {"file": pl.Int32, "plain": pl.Boolean, "json": pl.String, "cut": pl.String, "payload": pl.String,
     EVENT_UUID: pl.String, EVENT_NAME: pl.String, CREATED_AT: pl.Float64}
)
_OPTIONS = {"unstructured": "", "lines": ", ignore_errors = true"}
_FORMATS = {"unstructured": "unstructured", "lines": "newline_delimited"}
_FILE_IN_ERROR = re.compile(r'in file "(.+?)"')
# After this many failed reads of the whole list, the remaining objects are read one by one (an
# object with a malformed record fails fast on its own; a list fails after reading much of the rest).
_RETRIES = 1


def read(con: duckdb.DuckDBPyConnection, files: list[Path], framing: str) -> tuple[pl.DataFrame, list[Path]]:
    """Rows (:data:`ROW_SCHEMA`) of ``files`` (uncompressed, named by their index) in one query per
    attempt, and the files DuckDB could not read (``unstructured`` only): an object it can't read
    is dropped (all its pieces) and the rest re-read."""
    sql = _SQL.replace("@FORMAT@", _FORMATS[framing]).replace("@OPTIONS@", _OPTIONS[framing])
    remaining = list(files)
    failed: list[Path] = []
    failures = 0
    while remaining:
        try:
            return _frame(con.sql(sql, params={"files": [str(p) for p in remaining]})), failed
        except duckdb.Error as exc:
            failures += 1
            match = _FILE_IN_ERROR.search(str(exc))
            named = {object_index(p) for p in remaining if match and str(p) == match.group(1)}
            if not named or failures > _RETRIES:
                break
            failed += [p for p in remaining if object_index(p) in named]  # all of its object's pieces
            remaining = [p for p in remaining if object_index(p) not in named]
    # Many unreadable objects (or an error that names none): one query per object, two at a time.
    objects: dict[int, list[Path]] = {}
    for path in remaining:
        objects.setdefault(object_index(path), []).append(path)

    def one(paths: list[Path]) -> pl.DataFrame | None:
        cursor = con.cursor()
        try:
            return _frame(cursor.sql(sql, params={"files": [str(p) for p in paths]}))
        except duckdb.Error:
            return None
        finally:
            cursor.close()

    frames = [pl.DataFrame(schema=ROW_SCHEMA)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for paths, frame in zip(objects.values(), pool.map(one, objects.values())):
            if frame is None:
                failed += paths
            else:
                frames.append(frame)
    return pl.concat(frames), failed


def _frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    return pl.from_arrow(relation.to_arrow_table()).cast(dict(ROW_SCHEMA))


def vouched() -> pl.Expr:
    """Rows the bulk parser keeps as they are: plain, and valid by the contract's rule."""
    return pl.col("plain") & valid_fields_expr(pl.col(EVENT_UUID), pl.col(EVENT_NAME), pl.col(CREATED_AT))


def record_text(cut: str, payload: str) -> str:
    """A plain record's exact text, put back together from its payload and the common members
    cut out of it (for a plain record that the validity rule rejects)."""
    if cut.startswith("{"):  # the head: "{", leading whitespace, the members, and the next key's quote
        lead = len(payload) - 1 - len(payload[1:].lstrip(" \t\n\r"))
        return cut if payload == "{}" else cut + payload[2 + lead :]
    return payload[:-1].rstrip(" \t\n\r") + cut
