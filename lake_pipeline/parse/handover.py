"""Hand over records, not objects: the bulk parser's rows become records where it vouches for
them, and the Python parser takes only what it can't vouch for.

- A record DuckDB read but can't vouch for (invalid, odd, another layout) is parsed alone by the
  careful parser (`careful.parse_record`), at the position DuckDB gave it.
- An object DuckDB can't read as a whole (a malformed record, invalid UTF-8, odd framing) is read
  again as *units*: its lines, split again at ``}{`` unless it is newline-delimited (the Python
  parser's own units, `careful.split_units`), one DuckDB row per unit. The careful parser then
  takes each unit DuckDB can't vouch for, widened to the next safe boundary exactly as it widens
  its own (`careful.parse_windows`), and DuckDB's rows stand for the rest. Ordinals are counted
  through both. A newline-delimited object is read this way from the start (it never fails).
- An object whose units don't line up with DuckDB's rows (a guard) is handed back whole.

The result is the Python parser's, record for record: `tests/parse/test_bulk.py` holds them to it.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lake_pipeline.contract import CREATED_AT, EVENT_NAME, EVENT_UUID, ORDINAL, SOURCE_KEY
from lake_pipeline.duck import connection
from lake_pipeline.parse import bulk
from lake_pipeline.parse.careful import RecordColumns, parse_record, parse_windows, split_units
from lake_pipeline.parse.records import RECORD_SCHEMA, ParsedRecords

# Bytes DuckDB skips as whitespace where JSON doesn't: a unit holding one is the careful parser's.
SKIPPED_BYTES = (b"\x0b", b"\x0c", b"\x00")
_BLANK = b" \t\r\x0b\x0c"  # a line of only these is no row to DuckDB


@dataclass(frozen=True)
class Staged:
    """One raw object staged for DuckDB: ``paths`` uncompressed local files that hold it in order
    (a big object in pieces cut at record boundaries, so DuckDB reads them on every core), named
    by the object's index in its chunk and the piece (`bulk.piece_name`); ``framing``
    ``unstructured``, ``lines`` (newline-delimited) or ``units`` (read as units from the start:
    it holds bytes DuckDB skips)."""

    key: str
    paths: tuple[Path, ...]
    framing: str

    @property
    def index(self) -> int:
        return bulk.object_index(self.paths[0])

    def body(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.paths)


@dataclass
class Settled:
    """What :func:`settle` gives: the records (``sizes`` are left to the caller), the keys handed
    back whole (for the Python parser), and how much the careful parser took."""

    records: ParsedRecords
    whole: list[str]
    careful_records: int  # records the careful parser produced
    unit_objects: int  # objects read as units


def settle(staged: list[Staged], tmp: Path, threads: int) -> Settled:
    """Parse the staged objects; see the module docstring."""
    careful = RecordColumns()
    con = connection(threads)
    try:
        first = [s for s in staged if s.framing == "unstructured"]
        rows, failed = bulk.read(con, [p for s in first for p in s.paths], "unstructured")
        unreadable = {bulk.object_index(p) for p in failed}
        kept, again = _settle_records(rows, [s for s in first if s.index not in unreadable], careful)
        as_units = [s for s in staged if s.framing == "units" or s.index in unreadable | again]
        as_lines = [s for s in staged if s.framing == "lines"]
        units_dir = tmp / "units"
        units_dir.mkdir(exist_ok=True)
        for s in as_units:  # DuckDB reads each unit as a line
            (units_dir / bulk.piece_name(s.index)).write_bytes(s.body().replace(b"}{", b"}\n{"))
        paths = [p for s in as_lines for p in s.paths] + [units_dir / bulk.piece_name(s.index) for s in as_units]
        rows, _ = bulk.read(con, sorted(paths, key=lambda p: p.name), "lines")
        by_units, rejected, unit_objects = _settle_units(rows, as_lines + as_units, {s.index for s in as_units}, careful)
    finally:
        con.close()
    handed = len(careful.uuid) + len(careful.q_reason)
    if not handed and not by_units.records_per_object:
        return Settled(kept, rejected, 0, 0)  # DuckDB's rows alone, already in arrival order
    merged = ParsedRecords.merge_in_key_order([kept, by_units, careful.build()], [s.key for s in staged])
    return Settled(merged, rejected, handed, unit_objects)


def _records(rows: pl.DataFrame, keys: dict[int, str]) -> pl.DataFrame:
    """Vouched rows (with their ``_ordinal``) as records."""
    return rows.select(
        EVENT_UUID, EVENT_NAME, CREATED_AT, "payload",
        pl.col("file").replace_strict(keys, return_dtype=pl.String).alias(SOURCE_KEY), ORDINAL,
    ).cast(dict(RECORD_SCHEMA))


def _settle_records(
    rows: pl.DataFrame, objects: list[Staged], careful: RecordColumns
) -> tuple[ParsedRecords, set[int]]:
    """Objects DuckDB read record by record: keep what it vouches for, hand each other record to
    the careful parser. Returns their records, and the objects (indexes) to read again as units:
    those with a record Python's decoder doesn't read as one value where DuckDB does."""
    keys = {s.index: s.key for s in objects}
    rows = rows.filter(pl.col("file").is_in(list(keys))).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("file").alias(ORDINAL)
    )
    again: set[int] = set()
    others = rows.filter(~bulk.vouched())
    for (file,), group in others.group_by("file", maintain_order=True):
        part = RecordColumns()
        for json, cut, payload, ordinal in group.select("json", "cut", "payload", ORDINAL).iter_rows():
            text = json if json is not None else bulk.record_text(cut, payload)
            if not parse_record(keys[file], text, ordinal, part):
                again.add(file)
                break
        else:
            careful.extend(part)
    rows = rows.filter(~pl.col("file").is_in(list(again)))
    counts = dict(rows.group_by("file").len().iter_rows())
    per_object = {s.key: counts.get(s.index, 0) for s in objects if s.index not in again}
    return ParsedRecords(_records(rows.filter(bulk.vouched()), keys), records_per_object=per_object), again


def _settle_units(
    rows: pl.DataFrame, objects: list[Staged], braces: set[int], careful: RecordColumns
) -> tuple[ParsedRecords, list[str], int]:
    """Objects DuckDB read unit by unit (one row per unit that isn't blank). ``braces``: the
    objects whose units are split at ``}{`` too. Returns their records, the keys handed back, and
    how many objects the careful parser had a share in."""
    keys = {s.index: s.key for s in objects}
    by_file = rows.with_columns(bulk.vouched().alias("vouched")).partition_by("file", as_dict=True, maintain_order=True)
    frames = [pl.DataFrame(schema=RECORD_SCHEMA)]
    per_object: dict[str, int] = {}
    rejected: list[str] = []
    shared = 0
    for s in objects:
        file_rows = by_file.get((s.index,))
        if file_rows is None:  # no rows: nothing but blank lines
            file_rows = rows.clear().with_columns(pl.lit(True).alias("vouched"))
        if s.index not in braces and file_rows.get_column("vouched").all():
            kept, read = file_rows.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(ORDINAL)), file_rows.height
        else:
            shared += 1
            settled = _settle_object(s, file_rows, s.index in braces, careful)
            if settled is None:
                rejected.append(s.key)
                continue
            kept, read = settled
        frames.append(_records(kept, keys))
        per_object[s.key] = read
    return ParsedRecords(pl.concat(frames), records_per_object=per_object), rejected, shared


def _settle_object(
    s: Staged, rows: pl.DataFrame, braces: bool, careful: RecordColumns
) -> tuple[pl.DataFrame, int] | None:
    """One object's units: the careful parser over the spans DuckDB can't vouch for, DuckDB's rows
    for the rest. Returns the rows kept (with ordinals) and the records read; None when the units
    don't line up with the rows."""
    body = s.body()
    units, seps = split_units(body, braces)
    if len(units) == rows.height or (len(units) == rows.height + 1 and not units[-1].strip(_BLANK)):
        lined = range(rows.height)  # no blank unit (but perhaps the last): no need to look
    else:
        lined = [k for k, unit in enumerate(units) if unit.strip(_BLANK)]  # the units DuckDB gave rows
    if len(lined) == 1 and rows.height == 0:  # DuckDB gives no row for a lone unreadable line
        rows = pl.DataFrame([[None]] * len(bulk.ROW_SCHEMA), schema=bulk.ROW_SCHEMA).with_columns(vouched=pl.lit(False))
    if len(lined) != rows.height:
        return None
    forced: set[int] = set()
    if any(b in body for b in SKIPPED_BYTES):
        forced = {k for k, unit in enumerate(units) if any(b in unit for b in SKIPPED_BYTES)}
    flags = rows.get_column("vouched").to_list()
    vouched = [k for k, ok in zip(lined, flags) if ok and k not in forced]
    starts = sorted(forced.union(k for k, ok in zip(lined, flags) if not ok))
    taken = [0, 0, 0]  # spans accounted for, vouched units they cover, records they hold

    def ordinal_at(k: int, spans: list[tuple[int, int, int]]) -> int:
        for lo, hi, n in spans[taken[0]:]:
            taken[1] += bisect_left(vouched, hi) - bisect_left(vouched, lo)
            taken[2] += n
        taken[0] = len(spans)
        return bisect_left(vouched, k) - taken[1] + taken[2]

    spans = parse_windows(s.key, units, seps, starts, ordinal_at, careful)
    ordinal_at(len(units), spans)  # account for the last span
    adjust, total = [], 0
    for lo, hi, n in spans:
        total += n - (bisect_left(vouched, hi) - bisect_left(vouched, lo))
        adjust.append(total)
    frame = pl.DataFrame({"lo": [lo for lo, _, _ in spans], "hi": [hi for _, hi, _ in spans], "adjust": adjust},
                         schema={"lo": pl.Int64, "hi": pl.Int64, "adjust": pl.Int64})
    # Per row, on narrow columns (the wide ones are gathered once, by the last filter): whether a
    # span covers its unit, and its ordinal (its rank among the vouched units, plus what the spans
    # before it added or took away).
    narrow = (
        pl.DataFrame({"unit": pl.Series(list(lined), dtype=pl.Int64), "ok": flags})
        .with_columns((pl.col("ok") & ~pl.col("unit").is_in(list(forced))).alias("ok"))
        .with_columns((pl.col("ok").cast(pl.Int64).cum_sum() - 1).alias("rank"))
        .join_asof(frame.select("lo", "hi"), left_on="unit", right_on="lo", strategy="backward")
        .join_asof(frame.select(pl.col("hi").alias("end"), "adjust"), left_on="unit", right_on="end", strategy="backward")
        .select((pl.col("ok") & (pl.col("hi").is_null() | (pl.col("unit") >= pl.col("hi")))).alias("keep"),
                (pl.col("rank") + pl.col("adjust").fill_null(0)).alias(ORDINAL))
    )
    kept = rows.with_columns(narrow.get_column(ORDINAL)).filter(narrow.get_column("keep"))
    return kept, kept.height + taken[2]
