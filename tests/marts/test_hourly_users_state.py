"""The mart's users state on a real Delta table: reads by cell, and merges by level that keep
its rows and make its files few."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable

from lake_pipeline.marts import users
from lake_pipeline.settings import HOURLY_USERS_TABLE

H = datetime(2025, 11, 20, 13, tzinfo=UTC)


def _triples(n: int, start: int, hour: datetime = H, name: str = "page:view") -> pl.DataFrame:
    return pl.DataFrame({"event_hour": [hour] * n, "event_name": [name] * n,
                         "user_id": [f"u{i}" for i in range(start, start + n)]},
                        schema={"event_hour": pl.Datetime("us", "UTC"), "event_name": pl.String, "user_id": pl.String})


def _levels(lake_dir) -> list[int]:
    frame = pl.from_arrow(DeltaTable(str(lake_dir / HOURLY_USERS_TABLE)).to_pyarrow_table(columns=["level"]))
    return sorted(frame.get_column("level").unique().to_list())


def test_reads_by_cell_and_merges_by_level_keep_every_row(lake, lake_dir, monkeypatch):
    monkeypatch.setattr(users, "MERGE_FILES", 3)
    assert users.keep_files_few(lake) is False  # no state yet
    users.append(lake, users.as_state(_triples(0, 0)), "app", 1, {}, users.snapshot(lake))  # an empty append still records the version
    assert users.state_version(lake, "app") == 1 and users.keep_files_few(lake) is False
    users.replace(lake, [_triples(5000, 0).to_arrow()], "app", 2, {}, users.snapshot(lake))  # level 0: one cell of 5,000 users
    other = _triples(10, 0, name="click")
    for v in range(3, 6):
        users.append(lake, users.as_state(_triples(100, 10_000 + 100 * v)), "app", v, {}, users.snapshot(lake))
    assert users.keep_files_few(lake) is True
    assert _levels(lake_dir) == [0, 1]  # 300 rows above level 0 are under a quarter of 5,000: level 1
    for v in range(6, 30, 8):
        batch = _triples(400, 20_000 + 400 * v)
        users.append(lake, users.as_state(pl.concat([batch, other]) if v == 6 else batch), "app", v, {},
                     users.snapshot(lake))
    assert users.keep_files_few(lake) is True
    assert _levels(lake_dir) == [0]  # now beyond a quarter: the whole date is level 0 again
    assert users.state_version(lake, "app") == 22  # merges keep the version the state reflects
    seen, read = users.cell_users(lake, _triples(1, 0).select("event_hour", "event_name"), users.snapshot(lake))
    assert seen.height == 5000 + 300 + 1200 and read >= seen.height
    assert seen.get_column("user_id").n_unique() == seen.height
    clicks, read = users.cell_users(lake, other.select("event_hour", "event_name").unique(), users.snapshot(lake))
    assert clicks.height == 10 and read < seen.height  # only the row groups that can hold the cell
