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
from lake_pipeline.parse.text import HEAD, ODD, STRING, TAIL

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


def _sql_literal(pattern: str) -> str:
    assert "'" not in pattern
    return f"'{pattern}'"


def _token(field: str) -> str:
    return f"CASE '{field}' WHEN k1 THEN v1 WHEN k2 THEN v2 WHEN k3 THEN v3 END"


def _unquoted(field: str) -> str:
    return f"substr({_token(field)}, 2, length({_token(field)}) - 2)"


def _brackets(text: str) -> str:
    """SQL: the opening brackets in ``text`` (a bound on its nesting depth)."""
    return f"strlen({text}) - strlen(replace(replace({text}, '{{', ''), '[', ''))"


_TYPES_SQL = " AND ".join(_TOKEN_TYPE_SQL[FIELD_JSON_TYPES[f]].format(tok=_token(f)) for f in _FIELDS)
_VALUE_SQL = {
    "string": _unquoted,
    "number": lambda f: f"TRY_CAST({_token(f)} AS DOUBLE)",
}

_SQL = f"""
WITH raw AS (
  SELECT CAST(parse_filename(filename) AS INTEGER) // {10**PIECE_DIGITS} AS file, json
  FROM read_json_objects($files, format = '@FORMAT@', compression = 'none', filename = true@OPTIONS@)
), cut AS (
  SELECT file, json, h, CASE WHEN h.cut = '' AND json IS NOT NULL
                              THEN regexp_extract(json, {_sql_literal("(" + TAIL + ")$")}, {_TAIL_GROUPS}) END AS t
  FROM (SELECT file, json, regexp_extract(json, {_sql_literal("^(" + HEAD[1:] + ")")}, {_HEAD_GROUPS}) AS h FROM raw)
), members AS (
  SELECT file, json,
         CASE WHEN h.cut <> '' THEN h.cut ELSE t.cut END AS cut,
         CASE WHEN h.cut <> '' THEN [h.k1, h.k2, h.k3] ELSE [t.k1, t.k2, t.k3] END AS k,
         CASE WHEN h.cut <> '' THEN [h.v1, h.v2, h.v3] ELSE [t.v1, t.v2, t.v3] END AS v,
         CASE WHEN h.cut <> '' AND h.close LIKE '%}}' THEN '{{}}'
              WHEN h.cut <> '' THEN '{{' || h.lead || substr(json, length(h.cut))  -- from the next key's quote
              WHEN t.cut <> '' THEN substr(json, 1, length(json) - length(t.cut)) || t.close || '}}' END AS payload
  FROM cut
), fields AS (
  SELECT file, json, cut, payload, k[1] AS k1, k[2] AS k2, k[3] AS k3, v[1] AS v1, v[2] AS v2, v[3] AS v3
  FROM members
), judged AS (
  SELECT file, json, cut, payload, k1, k2, k3, v1, v2, v3,
         coalesce(payload IS NOT NULL AND k1 <> k2 AND k1 <> k3 AND k2 <> k3 AND {_TYPES_SQL}
                  AND NOT regexp_matches(payload, {_sql_literal(ODD)})
                  AND CASE WHEN strlen(payload) <= {2 * MAX_NESTING} THEN true  -- only long ones pay for a count
                           WHEN {_brackets("payload")} <= {MAX_NESTING} THEN true
                           ELSE {_brackets(f"regexp_replace(payload, {_sql_literal(STRING)}, '', 'g')")} <= {MAX_NESTING}
                      END, false) AS plain
  FROM fields
)
SELECT file, plain,
       CASE WHEN plain THEN NULL ELSE json END AS json,
       CASE WHEN plain THEN cut END AS cut,
       CASE WHEN plain THEN payload END AS payload,
       {", ".join(f"CASE WHEN plain THEN {_VALUE_SQL[FIELD_JSON_TYPES[f]](f)} END AS {f}" for f in _FIELDS)}
FROM judged
"""

ROW_SCHEMA = pl.Schema(
    {"file": pl.Int32, "plain": pl.Boolean, "json": pl.String, "cut": pl.String, "payload": pl.String,
     EVENT_UUID: pl.String, EVENT_NAME: pl.String, CREATED_AT: pl.Float64}
)
_OPTIONS = {"unstructured": "", "lines": ", ignore_errors = true"}
_FORMATS = {"unstructured": "unstructured", "lines": "newline_delimited"}
_FILE_IN_ERROR = re.compile(r'in file "(.+?)"')
# After this many failed whole-list reads, the remaining files are read one by one.
_RETRIES = 3


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
