"""The hourly ad analytics behind ``GET /analytics``: exact counts per UTC hour, from the lake.

For an hour: ``clicks`` and ``impressions`` are the events named ``settings.ad_click_event``
and ``settings.ad_impression_event`` whose ``created_at`` falls in it, ``unique_users`` the
distinct ``payload.user_id`` among them (as DuckDB's ``json_extract_string`` gives it, the
hourly mart's rule; events without one count as events, not as users).

:class:`HourlyAnalytics` keeps the hours it has answered (an LRU of :data:`MAX_HOURS`; the
current hour among them, warmed by every refresh), each with its rendered answer; the current
hour and the :data:`LIVE_HOURS` before it also as the users' set plus the two counts. :meth:`HourlyAnalytics.refresh` follows ``events``
(:class:`~lake_pipeline.serve.follow.EventsFollower`):

- a version that only added files (an ingest batch): the rows of those files alone are read
  and added to the live hours they fall in (an older held hour they fall in is dropped);
- a version that removed files (compaction, a rebuild's delete, an overwrite): every held
  hour the removed or added files may cover is dropped, and recomputed when next asked (the
  current hour at once);
- an hour not held is computed from the snapshot, reading only its event_date's partitions
  of the ad event types and the files whose created_at statistics overlap it.

An hour computed from version v is kept only when the follower is still at v, so every
answer is exact for the version it was read from.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from lake_pipeline.contract import USER_ID_SQL
from lake_pipeline.duck import connection
from lake_pipeline.settings import EVENTS_TABLE, Settings
from lake_pipeline.serve.follow import HOUR_SECONDS, Change, EventsFollower, hour_date, read_files
from lake_pipeline.tables.lake import Lake

MAX_HOURS = 4096  # hours held; the least recently asked go first and are recomputed when asked again
# The current hour and this many before it keep their users' set (late events keep coming to
# them, and are added); older held hours keep only their answer, and a change that touches one
# drops it, so memory stays ~200 bytes an hour however many past hours are asked for.
LIVE_HOURS = 2
ROW_COLUMNS = ["event_name", "created_at", "payload"]

_ROWS_SQL = f"""
SELECT CAST(floor(created_at / 3600) AS BIGINT) AS hour, event_name = $click AS click,
       {USER_ID_SQL} AS user_id
FROM rows WHERE event_name IN ($click, $impression)
"""


@dataclass
class HourCounts:
    users: set[str] | None = field(default_factory=set)  # None: the answer only (see LIVE_HOURS)
    clicks: int = 0
    impressions: int = 0
    text: bytes = b""

    def render(self) -> bytes:
        self.text = f"unique_users,{len(self.users or ())}\nclicks,{self.clicks}\nimpressions,{self.impressions}\n".encode()
        return self.text


class HourlyAnalytics:
    """Exact per-hour ad counts of one lake; thread-safe (see the module doc)."""

    def __init__(self, lake: Lake, settings: Settings, clock: Callable[[], float] = time.time):
        self.lake = lake
        self.click, self.impression = settings.ad_click_event, settings.ad_impression_event
        self.event_types = sorted({self.click.split(":", 1)[0], self.impression.split(":", 1)[0]})
        self.follower = EventsFollower(lake, self.event_types)
        self.clock = clock
        self._hours: OrderedDict[int, HourCounts] = OrderedDict()
        # The snapshot the held hours reflect: it moves, under the lock, together with the rows
        # of the change that led to it.
        self._snapshot = None
        self._version: int | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    @property
    def version(self) -> int | None:
        return self._version

    def current_hour(self) -> int:
        return int(self.clock() // HOUR_SECONDS)

    # --- Answers ----------------------------------------------------------------------

    def cached(self, hour: int) -> bytes | None:
        """The answer for ``hour`` when held (the fast path of a GET), else None."""
        with self._lock:
            counts = self._hours.get(hour)
            if counts is None:
                return None
            self._hours.move_to_end(hour)
            return counts.text

    def answer(self, hour: int) -> bytes:
        """The answer for ``hour``, computed from the current snapshot when not held."""
        text = self.cached(hour)
        if text is not None:
            return text
        with self._lock:
            snapshot, version = self._snapshot, self._version
        counts = self._compute(snapshot, hour)
        with self._lock:
            if version == self._version:
                self._remember(hour, counts)
        return counts.text

    def _remember(self, hour: int, counts: HourCounts) -> None:
        if hour < self.current_hour() - LIVE_HOURS:
            counts.users = None  # answer only (see LIVE_HOURS)
        self._hours[hour] = counts
        self._hours.move_to_end(hour)
        while len(self._hours) > MAX_HOURS:
            self._hours.popitem(last=False)

    def _rows(self, data: pa.Table) -> pa.Table:
        """(hour, click, user_id) of the clicks and impressions among ``data``'s rows."""
        with connection() as con:
            con.register("rows", data)
            return con.sql(_ROWS_SQL, params={"click": self.click, "impression": self.impression}).to_arrow_table()

    def _compute(self, snapshot, hour: int) -> HourCounts:
        counts = HourCounts()
        if snapshot is not None:
            start, end = hour * HOUR_SECONDS, (hour + 1) * HOUR_SECONDS
            scan = self.lake.scan(EVENTS_TABLE, snapshot=snapshot)
            data = (
                scan.filter(
                    (pl.col("event_date") == hour_date(hour)) & pl.col("event_type").is_in(self.event_types)
                    & (pl.col("created_at") >= start) & (pl.col("created_at") < end)
                    & pl.col("event_name").is_in([self.click, self.impression])
                )
                .select(ROW_COLUMNS)
                .collect()
                .to_arrow()
            )
            self._add(counts, self._rows(data))
        counts.render()
        return counts

    @staticmethod
    def _add(counts: HourCounts, rows: pa.Table) -> None:
        clicks = rows.column("click").to_pylist()
        counts.clicks += sum(1 for c in clicks if c)
        counts.impressions += sum(1 for c in clicks if not c)
        counts.users.update(u for u in rows.column("user_id").to_pylist() if u is not None)

    # --- Following the lake -----------------------------------------------------------

    def refresh(self) -> bool:
        """Bring the held hours up to the newest ``events`` version; True when it moved."""
        with self._refreshing:  # one refresher at a time (the poller; tests may call it too)
            change = self.follower.poll()
            if change is not None:
                self._apply(change)
            if self._snapshot is not None and self.cached(self.current_hour()) is None:
                self.answer(self.current_hour())  # keep the current hour in memory
            return change is not None

    def _apply(self, change: Change) -> None:
        if change.first or change.removed:
            touched = change.hours()
            with self._lock:
                for hour in [h for h in self._hours if change.first or h in touched]:
                    del self._hours[hour]
                self._snapshot, self._version = change.snapshot, change.version
            return
        held = self._held_hours()
        wanted = [f for f in change.added if held.intersection(f.hours())]
        rows = self._rows(read_files(self.lake, wanted, ROW_COLUMNS)) if wanted else None
        with self._lock:
            # An hour a GET computed from the old version while the files were read was not
            # among `held`: its rows of this change were not read, so it goes.
            touched = change.hours()
            for hour in [h for h in self._hours if h not in held and h in touched]:
                del self._hours[hour]
            if rows is not None:
                self._add_rows(rows)
            self._snapshot, self._version = change.snapshot, change.version

    def _held_hours(self) -> set[int]:
        with self._lock:
            return set(self._hours)

    def _add_rows(self, rows: pa.Table) -> None:
        """Add (hour, click, user_id) rows to the held hours (the caller holds the lock)."""
        touched: set[int] = set()
        columns = (rows.column(c).to_pylist() for c in ("hour", "click", "user_id"))
        for hour, click, user in zip(*columns, strict=True):
            counts = self._hours.get(hour)
            if counts is None:
                continue
            if counts.users is None:  # an answer-only past hour: computed again when next asked
                del self._hours[hour]
                continue
            touched.add(hour)
            if click:
                counts.clicks += 1
            else:
                counts.impressions += 1
            if user is not None:
                counts.users.add(user)
        for hour in touched:
            self._hours[hour].render()
