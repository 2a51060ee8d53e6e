"""`lake generate --start`: by default the arrival span ends now (no key stamped later than now);
-Nh/+Nh are whole hours from the current UTC hour; a future key is written only when asked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from lake_pipeline.cli.data import arrival_start
from tests.support.cli import invoke

_STAMP = re.compile(r"-1-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-")


def _stamps(raw) -> list[datetime]:
    return sorted(datetime.strptime(_STAMP.search(p.name).group(1), "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
                  for p in raw.rglob("*.gz"))


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def test_without_start_no_key_is_later_than_now_and_the_span_ends_now(tmp_path):
    before = datetime.now(UTC)
    result = invoke("generate", "--out", str(tmp_path / "raw"), "--events", "300", "--seed", "9", cwd=tmp_path)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.stderr
    stamps = _stamps(tmp_path / "raw")
    assert len(stamps) == 60
    assert stamps[-1] <= after  # nothing from the future
    assert stamps[-1] >= before - timedelta(seconds=62)  # the last object is about now
    assert stamps[0] >= before - timedelta(hours=1, seconds=2)  # --hours 1: the last hour
    assert "note:" not in result.stderr


def test_relative_start_counts_whole_hours_from_the_current_utc_hour(tmp_path):
    before = datetime.now(UTC)
    result = invoke("generate", "--out", str(tmp_path / "raw"), "--events", "300", "--start", "-2h", cwd=tmp_path)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.stderr
    stamps = _stamps(tmp_path / "raw")
    assert {_hour(s) for s in stamps} in ({_hour(before) - timedelta(hours=2)}, {_hour(after) - timedelta(hours=2)})
    now = datetime(2026, 12, 1, 10, 20, 5, tzinfo=UTC)
    assert arrival_start("-2h", 3600, now) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert arrival_start("+1h", 3600, now) == datetime(2026, 12, 1, 11, tzinfo=UTC)
    assert arrival_start(None, 3600, now) == now - timedelta(hours=1)
    assert arrival_start("2025-11-20T13", 3600, now) == datetime(2025, 11, 20, 13, tzinfo=UTC)


def test_a_start_in_the_future_is_honoured_and_said(tmp_path):
    result = invoke("generate", "--out", str(tmp_path / "raw"), "--events", "100", "--start", "+1h", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    assert _stamps(tmp_path / "raw")[0] > datetime.now(UTC)
    assert result.stderr.strip().startswith("note: as asked (--start +1h), keys up to")


def test_an_unreadable_start_is_one_error_line(tmp_path):
    result = invoke("generate", "--out", str(tmp_path / "raw"), "--events", "10", "--start", "tomorrow", cwd=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --start 'tomorrow' is neither a time like 2025-11-20T13 nor hours from now like -2h"]
