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
