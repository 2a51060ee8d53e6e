"""What a batch counts, per raw object, and what it reports.

:class:`BatchCounts` is the one place the per-object counts accumulate (records read,
raw bytes, inserted, duplicates, quarantined); it builds the ledger rows, whose sums
are the batch's totals, so conservation (records = inserted + duplicates + quarantined)
holds per object and per batch by construction of the same numbers.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import polars as pl

from lake_pipeline.parse.records import ParsedRecords


@dataclass
class BatchResult:
    batch_id: int
    objects: int = 0
    object_bytes: int = 0
    records: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    resumed: bool = False
    event_dates: list[str] = field(default_factory=list)
    # Dedupe: where the seen keys came from ("index", or "events" until `lake index build` ran),
    # the history rows it read (of them, those read from closed dates' key files), and records whose
    # horizon reaches before the index's retention (looked up in events instead).
    dedupe_source: str = "index"
    dedupe_rows_read: int = 0
    dedupe_key_file_rows_read: int = 0
    late_beyond_index: int = 0
    # Seconds per stage (plan, read_parse, curate, write_events, write_quarantine, write_ledger).
    timings: dict[str, float] = field(default_factory=dict)
    # Who ran the stages (Settings.engine), how many tasks they were (0: in this process), on how many nodes.
    engine: str = "local"
    tasks: int = 0
    nodes: int = 1

    @property
    def conserved(self) -> bool:
        return self.records == self.inserted + self.duplicates + self.quarantined

    def as_dict(self) -> dict:
        return asdict(self)


class Stopwatch:
    """Seconds per named stage: :meth:`lap` adds the time since the previous lap to a stage."""

    def __init__(self):
        self.started = self._last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(self.timings.get(stage, 0.0) + now - self._last, 3)
        self._last = now

    def restart(self) -> None:
        """Start the next lap now (time since the last lap counts for no stage yet)."""
        self._last = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


class BatchCounts:
    """Per-object counts of one batch over ``keys`` (its objects, in key order)."""

    def __init__(self, keys: list[str]):
        self.keys = list(keys)
        self.records: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.inserted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.quarantined: Counter[str] = Counter()
        self.event_dates: set = set()

    def add_parsed(self, parsed: ParsedRecords) -> None:
        """A parsed chunk: records read and raw bytes per object, and its quarantine rows."""
        self.records.update(parsed.records_per_object)
        self.sizes.update(parsed.sizes)
        if parsed.quarantine.height:
            self.quarantined.update(dict(parsed.quarantine.group_by("source_key").len().iter_rows()))

    def add_curated(self, inserted: dict[str, int], duplicates: dict[str, int], kept: pl.DataFrame) -> None:
        """A curated chunk: rows kept and dropped as duplicates, per object, and the dates it touched."""
        self.inserted.update(inserted)
        self.duplicates.update(duplicates)
        if kept.height:
            self.event_dates.update(kept.get_column("event_date").unique().to_list())

    def ledger_rows(self) -> pl.DataFrame:
        """One row per object (``source_key``, ``object_bytes``, ``records``, ``inserted``,
        ``duplicates``, ``quarantined``), in key order; ledger.write_ledger adds the totals."""
        return pl.DataFrame(
            {
                "source_key": self.keys,
                "object_bytes": [self.sizes.get(k, 0) for k in self.keys],
                "records": [self.records.get(k, 0) for k in self.keys],
                "inserted": [self.inserted[k] for k in self.keys],
                "duplicates": [self.duplicates[k] for k in self.keys],
                "quarantined": [self.quarantined[k] for k in self.keys],
            },
            schema={"source_key": pl.String, "object_bytes": pl.Int64, "records": pl.Int64,
                    "inserted": pl.Int64, "duplicates": pl.Int64, "quarantined": pl.Int64},
        )

    def result(self, batch_id: int, resumed: bool, clock: Stopwatch, dedupe: dict | None = None) -> BatchResult:
        return BatchResult(
            **(dedupe or {}),
            batch_id=batch_id,
            objects=len(self.keys),
            object_bytes=sum(self.sizes.values()),
            records=sum(self.records.values()),
            inserted=sum(self.inserted[k] for k in self.keys),
            duplicates=sum(self.duplicates[k] for k in self.keys),
            quarantined=sum(self.quarantined.values()),
            seconds=clock.seconds,
            resumed=resumed,
            event_dates=sorted(d.isoformat() for d in self.event_dates),
            timings=dict(clock.timings),
        )
