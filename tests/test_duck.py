"""Connections from lake_pipeline.duck share a database, never their state: a batch's parse and
the mart's grouping open them on several threads at once, with their own TEMP tables and views."""

import threading

import duckdb
import pyarrow as pa
import pytest

from lake_pipeline.duck import connection


def test_each_connection_has_its_own_temp_tables_views_and_settings():
    first, second = connection(), connection()
    first.execute("SET TimeZone = 'America/New_York'")
    first.execute("CREATE TEMP TABLE grouped AS SELECT 1 AS x")
    first.register("hour_rows", pa.table({"x": [1, 2]}))
    assert second.execute("SELECT current_setting('TimeZone')").fetchone()[0] != "America/New_York"
    for name in ("grouped", "hour_rows"):
        with pytest.raises(duckdb.CatalogException):
            second.sql(f"SELECT * FROM {name}").fetchall()
    assert first.execute("SELECT count(*) FROM hour_rows").fetchone()[0] == 2
    first.close()
    third = connection()  # the closed one's TEMP table went with it
    with pytest.raises(duckdb.CatalogException):
        third.sql("SELECT * FROM grouped").fetchall()
    third.close()
    second.close()


def test_connections_of_a_thread_count_share_its_setting_and_threads_use_them_at_once():
    assert connection(1).execute("SELECT current_setting('threads')").fetchone()[0] == 1
    results = []

    def group(n: int) -> None:
        con = connection()
        con.execute(f"CREATE TEMP TABLE grouped AS SELECT range % 7 AS k, count(*) AS n FROM range({n}) GROUP BY 1")
        results.append(con.execute("SELECT sum(n) FROM grouped").fetchone()[0])
        con.close()

    threads = [threading.Thread(target=group, args=(100_000 * (i + 1),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [100_000, 200_000, 300_000, 400_000]
