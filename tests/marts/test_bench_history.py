"""`make bench-history` on a tiny history: it writes the lakes, feeds their last minutes as
batches, verifies the batch (every redelivery dropped, nothing else) and the mart's update, and
prints the table."""

from __future__ import annotations

from lake_pipeline.devtools import bench_history


def test_bench_history_runs_verifies_and_prints_its_table(tmp_path, capsys):
    out = tmp_path / "table.md"
    code = bench_history.main(["--sizes", "4K", "--days", "1", "--batch-events", "400", "--work",
                               str(tmp_path / "work"), "--out", str(out), "--process-runs", "2",
                               "--recent-minutes", "21"])
    assert code == 0
    lines = out.read_text().splitlines()
    empty, history = lines[-2].split("|"), lines[-1].split("|")
    assert empty[1].strip() == "empty" and history[1].strip() == "4,000/day"
    assert history[10].strip() == "400 (400)" and history[11].strip() == f"{bench_history.REDELIVERIES} " \
        f"({bench_history.REDELIVERIES})"
    assert history[12].strip() == "yes" and "(add)" in history[14]
    assert int(history[8].replace(",", "")) >= int(history[9].replace(",", "")) >= 0  # key files' rows among them
    # `lake ingest` of the same batch, a whole process, into a copy of each lake, and its ratio
    assert float(empty[6]) > 0 and float(history[6]) > 0 and float(empty[7]) == 1.0
    # twice each: the median of two runs is their mean, between the two printed beside it
    fastest, slowest = (float(v) for v in history[18].split("-"))
    assert fastest <= float(history[6]) <= slowest and abs(float(history[6]) - (fastest + slowest) / 2) < 0.011
    # each history run beside one into an empty lake: their median and the median of the pairs' ratios
    assert empty[19].strip() == "-" and empty[20].strip() == "-"
    assert float(history[19]) > 0 and float(history[20]) > 0
    assert not (tmp_path / "work" / "lake-4000").exists()  # history lakes are removed unless --keep
    assert not (tmp_path / "work" / "lake-empty-beside-process").exists()
    printed = capsys.readouterr().out
    assert "4,000/day: batch" in printed
    # the last 21 minutes ran as 21 batches, and the compaction of minute 40 ran once among them
    assert "fed the last 21 minute(s) as 21 one-minute batch(es), the mart updated after each, compacted 1 time(s)" \
        in printed
