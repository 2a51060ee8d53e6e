"""Deduplication on event_uuid within a horizon: DESIGN.md §2 "Deduplication"."""

from __future__ import annotations

import random
from collections import defaultdict

import polars as pl
import pytest

from lake_pipeline.contract import CREATED_AT, EVENT_UUID
from lake_pipeline.transforms.dedupe import duplicate_mask, history_window

HOUR = 3600.0
T = 1763643900.25  # 2025-11-20T13:05:00.25Z


def frame(rows: list[tuple], payload: bool = False) -> pl.DataFrame:
    """Rows of (event_uuid, created_at[, payload]) in arrival order."""
    data = {
        EVENT_UUID: pl.Series([r[0] for r in rows], dtype=pl.String),
        CREATED_AT: pl.Series([float(r[1]) for r in rows], dtype=pl.Float64),
    }
    if payload:
        data["payload"] = pl.Series([r[2] for r in rows], dtype=pl.String)
    return pl.DataFrame(data)


NO_HISTORY = frame([])


def mask(batch_rows, history_rows=(), horizon=HOUR) -> list[bool]:
    m = duplicate_mask(frame(list(batch_rows)), frame(list(history_rows)), horizon)
    assert m.dtype == pl.Boolean and len(m) == len(batch_rows)
    return m.to_list()


def reference(batch_rows, history_rows, horizon) -> list[bool]:
    """The contract, literally: a duplicate when a record with the same uuid was already
    accepted (earlier batch, or earlier in this batch) with created_at within the horizon."""
    accepted: dict[str, list[float]] = defaultdict(list)
    for u, c in history_rows:
        accepted[u].append(c)
    out = []
    for u, c in batch_rows:
        dup = any(abs(c - a) <= horizon for a in accepted[u])
        if not dup:
            accepted[u].append(c)
        out.append(dup)
    return out


# --- Within a batch ----------------------------------------------------------------------


def test_no_duplicates():
    assert mask([("a", T), ("b", T), ("c", T + 1)]) == [False, False, False]


def test_exact_copies_in_one_batch_keep_the_first_arrival():
    assert mask([("a", T), ("b", T), ("a", T), ("a", T), ("b", T)]) == [False, False, True, True, True]


def test_first_arrival_wins_when_duplicates_differ():
    rows = [
        ("a", T + 10, "first"),
        ("b", T, "b-only"),
        ("a", T, "second, earlier created_at"),
        ("a", T + 5, "third"),
        ("c", T, "c-first"),
        ("c", T + 1, "c-second"),
    ]
    batch = frame(rows, payload=True)
    dup = duplicate_mask(batch, NO_HISTORY, HOUR)
    assert dup.to_list() == [False, False, True, True, False, True]
    kept = batch.filter(~dup)
    assert kept.get_column("payload").to_list() == ["first", "b-only", "c-first"]


def test_duplicate_uuid_in_another_record_does_not_matter():
    assert mask([("a", T), ("A", T), ("a ", T), ("b", T)]) == [False, False, False, False]


# --- Against earlier batches (history) ------------------------------------------------------


def test_duplicates_across_batches_via_history():
    history = [("a", T), ("b", T - 2 * HOUR)]
    assert mask([("a", T), ("a", T + 1800), ("b", T), ("c", T)], history) == [True, True, False, False]


def test_history_wins_over_every_copy_in_the_batch():
    batch = frame([("a", T, "new-1"), ("a", T, "new-2")], payload=True)
    dup = duplicate_mask(batch, frame([("a", T)]), HOUR)
    assert dup.to_list() == [True, True]


def test_history_rows_with_other_uuids_are_ignored():
    history = [("b", T), ("c", T), ("aa", T), ("A", T)]
    assert mask([("a", T)], history) == [False]


def test_history_beyond_the_horizon_is_not_a_duplicate():
    assert mask([("a", T)], [("a", T - HOUR - 0.001), ("a", T + HOUR + 0.001)]) == [False]
    assert mask([("a", T)], [("a", T - HOUR - 0.001), ("a", T + HOUR)]) == [True]


def test_a_row_dropped_against_history_is_not_accepted():
    """Only accepted records make later copies duplicates."""
    # row 0 is a duplicate of history; row 1 is within the horizon of row 0 but not of history
    assert mask([("a", T + 3000), ("a", T + 6000)], [("a", T)]) == [True, False]
    # row 0 is accepted (beyond history's horizon); row 1 is within row 0's horizon -> duplicate
    assert mask([("a", T + 5000), ("a", T + 3000)], [("a", T)]) == [False, True]


def test_history_with_many_rows_for_one_uuid():
    history = [("a", T + k * 2 * HOUR) for k in range(10)] + [(f"x{k}", T) for k in range(100)]
    batch = [("a", T + k * HOUR) for k in range(20)] + [("a", T + 20.5 * HOUR), ("a", T + 21 * HOUR)]
    # every whole hour up to 19h is within 1h of an even hour in history; 20.5h is not, and
    # the copies before it were dropped, not accepted; 21h is within the horizon of 20.5h
    assert mask(batch, history) == [True] * 20 + [False, True]


# --- The horizon ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta, duplicate",
    [
        (0.0, True),
        (1e-6, True),
        (HOUR - 0.001, True),
        (HOUR, True),  # exactly the horizon: duplicate
        (HOUR + 0.001, False),  # horizon + epsilon: not
        (HOUR + 1, False),
        (-HOUR, True),
        (-HOUR - 0.001, False),
    ],
)
def test_horizon_boundary(delta, duplicate):
    # within one batch
    assert mask([("a", T), ("a", T + delta)]) == [False, duplicate]
    # and against history
    assert mask([("a", T + delta)], [("a", T)]) == [duplicate]


def test_horizon_boundary_at_the_smallest_float_step():
    import math

    just_over = math.nextafter(T + HOUR, math.inf)
    assert just_over - T > HOUR
    assert mask([("a", T), ("a", just_over)]) == [False, False]
    assert mask([("a", T), ("a", T + HOUR)]) == [False, True]


def test_copies_spread_wider_than_the_horizon_chain_greedily():
    chain = [("a", T), ("a", T + 0.8 * HOUR), ("a", T + 1.6 * HOUR)]
    assert mask(chain) == [False, True, False]  # keep 0 and 1.6h
    longer = chain + [("a", T + 2.4 * HOUR), ("a", T + 3.2 * HOUR)]
    assert mask(longer) == [False, True, False, True, False]
    # arrival order decides, not created_at order
    assert mask([("a", T + 1.6 * HOUR), ("a", T + 0.8 * HOUR), ("a", T)]) == [False, True, False]
    assert mask([("a", T + 0.8 * HOUR), ("a", T), ("a", T + 1.6 * HOUR)]) == [False, True, True]


def test_chains_and_simple_groups_in_one_batch():
    rows = [
        ("chain", T),
        ("simple", T),
        ("chain", T + 0.8 * HOUR),
        ("simple", T + 10),
        ("single", T),
        ("chain", T + 1.6 * HOUR),
        ("simple", T - 10),
        ("chain", T + 5 * HOUR),
        ("chain", T + 5 * HOUR),
    ]
    assert mask(rows) == [False, False, True, True, False, False, True, False, True]


def test_horizon_is_configurable():
    rows = [("a", T), ("a", T + 60), ("a", T + 61), ("a", T + 120)]
    assert mask(rows, horizon=60) == [False, True, False, True]
    assert mask(rows, horizon=HOUR) == [False, True, True, True]
    assert mask(rows, horizon=30) == [False, False, True, False]
    assert mask(rows, horizon=0) == [False, False, False, False]
    assert mask([("a", T), ("a", T)], horizon=0) == [False, True]
    assert mask([("a", T + 1.5 * HOUR)], [("a", T)], horizon=2 * HOUR) == [True]
    assert mask([("a", T + 1.5 * HOUR)], [("a", T)], horizon=HOUR) == [False]


# --- Replays --------------------------------------------------------------------------------


def test_replays_with_the_same_created_at_are_dropped_however_late_they_arrive():
    # in one batch, after many other records (and records created much later)
    filler = [(f"other-{i}", T + 10 * 86400 + i) for i in range(20_000)]
    rows = [("a", T), *filler, ("a", T)]
    m = mask(rows)
    assert m[0] is False and m[-1] is True
    assert not any(m[1:-1])
    # in a later batch, e.g. a Firehose redelivery days later: history holds the original
    assert mask([("late-1", T + 7 * 86400), ("a", T)], [("a", T)]) == [False, True]
    # a producer retry that re-stamps created_at beyond the horizon is (by contract) not caught here
    assert mask([("a", T + 2 * HOUR)], [("a", T)]) == [False]


# --- Shapes and edge cases -------------------------------------------------------------------


def test_empty_batch_and_empty_history():
    assert duplicate_mask(frame([]), NO_HISTORY, HOUR).to_list() == []
    assert duplicate_mask(frame([]), frame([("a", T)]), HOUR).to_list() == []
    assert mask([("a", T)], []) == [False]


def test_extra_columns_and_integer_created_at_are_fine():
    batch = pl.DataFrame({EVENT_UUID: ["a", "b", "a"], CREATED_AT: [1, 2, 3], "payload": ["x", "y", "z"]})
    history = pl.DataFrame({EVENT_UUID: ["b"], CREATED_AT: [2.0], "other": [1]})
    assert duplicate_mask(batch, history, HOUR).to_list() == [False, True, True]


def test_matches_the_contract_on_random_batches():
    """Compare with a literal reading of the contract over many random small batches."""
    rng = random.Random(11)
    for trial in range(400):
        horizon = rng.choice([HOUR, 60.0, 0.0, 7200.0])
        uuids = [f"u{i}" for i in range(rng.randint(1, 5))]
        steps = [0.0, horizon / 2, horizon, horizon * 0.8, horizon * 1.6, horizon + 1, 3 * horizon, 17.0]

        def at():
            return T + rng.choice(steps) * rng.choice([1, -1]) + rng.choice([0, 0, 0.001])

        history = [(rng.choice(uuids), at()) for _ in range(rng.randint(0, 6))]
        batch = [(rng.choice(uuids), at()) for _ in range(rng.randint(1, 25))]
        assert mask(batch, history, horizon) == reference(batch, history, horizon), (trial, horizon, batch, history)


# --- history_window ---------------------------------------------------------------------------


def test_history_window_single_value():
    assert history_window(pl.Series([T]), HOUR) == [(T - HOUR, T + HOUR)]


def test_history_window_merges_overlapping_and_touching_spans():
    values = pl.Series([T + 5 * HOUR, T, T + 1000, T, T + 2 * HOUR, T + 20 * HOUR])
    spans = history_window(values, HOUR)
    # T, T+1000 and T+2h overlap or touch (T+1000+1h >= T+2h-1h) -> one span; 5h and 20h apart
    assert spans == [(T - HOUR, T + 3 * HOUR), (T + 4 * HOUR, T + 6 * HOUR), (T + 19 * HOUR, T + 21 * HOUR)]
    # exactly touching (gap of 2 horizons) merges
    assert history_window(pl.Series([0.0, 2 * HOUR]), HOUR) == [(-HOUR, 3 * HOUR)]
    # just apart does not
    assert history_window(pl.Series([0.0, 2 * HOUR + 1]), HOUR) == [(-HOUR, HOUR), (HOUR + 1, 3 * HOUR + 1)]


def test_history_window_covers_every_possible_match():
    """Every history created_at that could make a batch row a duplicate lies in a span; spans are disjoint."""
    rng = random.Random(5)
    for _ in range(50):
        horizon = rng.choice([HOUR, 60.0, 86400.0])
        values = [T + rng.uniform(-3, 3) * 86400 for _ in range(rng.randint(1, 40))]
        spans = history_window(pl.Series(values), horizon)
        assert spans == sorted(spans)
        for (lo1, hi1), (lo2, hi2) in zip(spans, spans[1:]):
            assert hi1 < lo2
        for v in values:
            for probe in (v - horizon, v, v + horizon):
                assert any(lo <= probe <= hi for lo, hi in spans)
        # and nothing far from every value is included
        for lo, hi in spans:
            assert any(lo == v - horizon for v in values) and any(hi == v + horizon for v in values)


# --- buckets --------------------------------------------------------------------------


def test_uuid_hash_is_pinned_so_stored_buckets_never_move():
    # The index stores each row's bucket: a hash that changed between versions would look
    # for a key in the wrong bucket and miss a duplicate. These values must never change.
    from lake_pipeline.transforms.dedupe import uuid_hash

    got = uuid_hash(pl.Series(["a", "ab", "é", "00000000-0000-0000-0000-000000000000"])).tolist()
    assert got == [15948082774367430396, 7282018797643752832, 3402622365831216939, 13847192723696213049]


def test_buckets_are_the_same_whatever_the_mix_of_lengths_and_slices():
    from lake_pipeline.transforms.dedupe import bucket_of, uuid_hash

    uuids = pl.Series([f"{i:08x}-{'x' * (i % 7)}" for i in range(5000)])
    alone = [int(uuid_hash(pl.Series([u]))[0]) for u in uuids.to_list()[:50]]
    assert uuid_hash(uuids)[:50].tolist() == alone
    assert bucket_of(uuids.slice(10, 100), 16).to_list() == bucket_of(uuids, 16).slice(10, 100).to_list()
    counts = bucket_of(uuids, 16).value_counts().get_column("count")
    assert counts.len() == 16 and counts.min() > 5000 / 16 * 0.7  # spread over every bucket


def test_an_empty_uuid_cannot_be_bucketed():
    from lake_pipeline.transforms.dedupe import uuid_hash

    with pytest.raises(ValueError, match="non-empty"):
        uuid_hash(pl.Series(["a", ""]))
