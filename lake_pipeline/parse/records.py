"""The one parsed-records type: what every parser returns for a run of raw objects.

Both parsers (the careful Python parser in `careful.py` and the DuckDB bulk parser in
`bulk.py`) produce it, and the batch consumes it; it is Polars throughout (every
Arrow <-> Polars round trip copies every string).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from lake_pipeline.contract import CREATED_AT, EVENT_NAME, EVENT_UUID, ORDINAL, SOURCE_KEY

# Valid records, in arrival order (key order, then position in the object).
RECORD_SCHEMA = pl.Schema(
    {
        EVENT_UUID: pl.String,
        EVENT_NAME: pl.String,
        CREATED_AT: pl.Float64,
        "payload": pl.String,
        SOURCE_KEY: pl.String,
        ORDINAL: pl.Int64,
    }
)
# Quarantined records (batch id and time are added at commit: `transforms.enrich.quarantine_frame`).
QUARANTINE_SCHEMA = pl.Schema(
    {"raw_record": pl.String, "reason": pl.String, "source_key": pl.String, ORDINAL: pl.Int64}
)


@dataclass
class ParsedRecords:
    """Records and quarantine rows of some raw objects, with per-object counts.

    ``records_per_object`` counts every record read (valid or not; an unreadable object
    counts as one), ``sizes`` the raw bytes of each object.
    """

    records: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=RECORD_SCHEMA))
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    records_per_object: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def records_read(self) -> int:
        return sum(self.records_per_object.values())

    @classmethod
    def concat(cls, parts: Iterable[ParsedRecords]) -> ParsedRecords:
        """Parts of disjoint objects, already in arrival order relative to each other."""
        parts = list(parts)
        if not parts:
            return cls()
        merged = cls(
            pl.concat([p.records for p in parts], how="vertical_relaxed"),
            pl.concat([p.quarantine for p in parts], how="vertical_relaxed"),
        )
        for p in parts:
            merged.records_per_object.update(p.records_per_object)
            merged.sizes.update(p.sizes)
        return merged

    @classmethod
    def merge_in_key_order(cls, parts: Iterable[ParsedRecords], keys: list[str]) -> ParsedRecords:
        """Parts of disjoint objects in any order, put back in arrival order (``keys`` order,
        then position), e.g. the bulk parser's objects and the ones it handed over."""
        merged = cls.concat(parts)
        index = {k: i for i, k in enumerate(keys)}

        def ordered(frame: pl.DataFrame, key_column: str) -> pl.DataFrame:
            rank = pl.col(key_column).replace_strict(index, return_dtype=pl.Int64)
            return frame.sort(rank, pl.col(ORDINAL), maintain_order=True, nulls_last=True)

        merged.records = ordered(merged.records, SOURCE_KEY)
        merged.quarantine = ordered(merged.quarantine, "source_key")
        merged.records_per_object = {k: merged.records_per_object[k] for k in keys if k in merged.records_per_object}
        merged.sizes = {k: merged.sizes[k] for k in keys if k in merged.sizes}
        return merged
