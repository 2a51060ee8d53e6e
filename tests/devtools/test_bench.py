"""`make bench --rounds N`: each round's ingest is divided by the floor of that same round, and
the rounds' ratios are summarised by their median (not by the ratio of the median seconds)."""

from __future__ import annotations

from lake_pipeline.devtools.bench import summarize

FLOOR, INGEST = "DuckDB single-SQL floor", "lake ingest"


def _round(floor: float, ingest: float, baseline: float, dirty: float, clean_floor: float, clean: float):
    rows = [
        {"corpus": "realistic", "run": FLOOR, "seconds": floor, "rss": 100, "events": 10},
        {"corpus": "realistic", "run": INGEST, "seconds": ingest, "rss": 200, "events": 10},
        {"corpus": "realistic", "run": "lake ingest, baseline", "seconds": baseline, "rss": 300, "events": 10},
        {"corpus": "clean (newline-delimited)", "run": FLOOR, "seconds": clean_floor, "rss": 1, "events": 10},
        {"corpus": "clean (newline-delimited)", "run": INGEST, "seconds": clean, "rss": 1, "events": 10},
        {"corpus": "dirty (1% bad lines)", "run": INGEST, "seconds": dirty, "rss": 1, "events": 10,
         "floor": "clean (newline-delimited)"},
    ]
    return rows, {"realistic": floor, "clean (newline-delimited)": clean_floor}


def test_rounds_are_summarised_by_the_median_of_their_own_ratios():
    rounds = [_round(10, 15, 30, 12, 10, 10), _round(20, 22, 11, 26, 20, 20), _round(10, 13, 13, 11, 10, 10)]
    rows, derived = summarize(rounds)
    by = {(r["corpus"], r["run"]): r for r in rows}
    ingest = by[("realistic", INGEST)]
    # Per round 1.5, 1.1, 1.3: the median is 1.3. The median seconds (15) over the median floor
    # (10) would say 1.5, which is what summarising the seconds first gets wrong.
    assert ingest["ratio"] == 1.3
    assert (ingest["seconds"], ingest["low"], ingest["high"], ingest["rounds"]) == (15, 13, 22, 3)
    assert by[("realistic", FLOOR)]["ratio"] == 1.0
    # dirty has no floor of its own: the clean floor of its round (1.2, 1.3, 1.1).
    assert by[("dirty (1% bad lines)", INGEST)]["ratio"] == 1.2
    assert by[("realistic", "lake ingest, baseline")]["rss"] == 300
    # Derived ratios pair the two runs of one round: 15/30, 22/11, 13/13 -> 0.5, 2.0, 1.0.
    assert derived["realistic: this code / baseline"] == 1.0
    assert derived["dirty / clean"] == 1.2
    assert "history / empty lake" not in derived  # not measured: not printed


def test_one_round_gives_that_round_unchanged():
    rows, derived = summarize([_round(8, 12, 10, 9, 9, 6)])
    by = {(r["corpus"], r["run"]): r for r in rows}
    assert by[("realistic", INGEST)]["ratio"] == 1.5
    assert by[("realistic", INGEST)]["low"] == by[("realistic", INGEST)]["high"] == 12
    assert derived["dirty / clean"] == 1.5
    assert derived["realistic: this code / baseline"] == 1.2


def test_a_lake_copied_for_a_run_takes_a_batch_and_leaves_the_source_as_it_was(settings, raw_dir, lake_dir, tmp_path):
    import os

    from deltalake import DeltaTable

    from lake_pipeline.devtools.bench import copy_lake
    from lake_pipeline.engines.run import ingest_keys
    from lake_pipeline.settings import EVENTS_TABLE
    from tests.support.records import event, write_object

    first = write_object(raw_dir, [event("a"), event("b")], minute=1)
    ingest_keys(settings, [first])
    before = {p: p.stat().st_size for p in lake_dir.rglob("*") if p.is_file()}
    copy = tmp_path / "copy"
    copy_lake(lake_dir, copy)
    log = next(copy.rglob("_delta_log/00000000000000000000.json"))
    data = next(p for p in (copy / EVENTS_TABLE).rglob("*.parquet"))
    assert not os.path.samefile(log, lake_dir / log.relative_to(copy))  # the logs are copies
    assert os.path.samefile(data, lake_dir / data.relative_to(copy))  # the data files links
    second = write_object(raw_dir, [event("c")], minute=2)
    ingest_keys(settings.with_overrides(lake_uri=str(copy)), [second])
    assert sorted(DeltaTable(str(copy / EVENTS_TABLE)).to_pyarrow_table().column("event_uuid").to_pylist()) == ["a", "b", "c"]
    assert {p: p.stat().st_size for p in lake_dir.rglob("*") if p.is_file()} == before
    assert sorted(DeltaTable(str(lake_dir / EVENTS_TABLE)).to_pyarrow_table().column("event_uuid").to_pylist()) == ["a", "b"]
