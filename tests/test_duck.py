"""Connections from lake_pipeline.duck share a database, never their state: a batch's parse and
the mart's grouping open them on several threads at once, with their own TEMP tables and views."""

import threading

import duckdb
import pyarrow as pa
import pytest

from lake_pipeline.duck import close_all, connection


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
    first.close()  # closes that connection only, not the database the others use
    with pytest.raises(duckdb.ConnectionException):
        first.execute("SELECT 1")
    assert second.execute("SELECT 1").fetchone()[0] == 1
    third = connection()
    assert third.execute("SELECT 2").fetchone()[0] == 2
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


def test_a_forked_child_opens_its_own_database_and_leaves_its_parents_alone():
    """A fork (subprocess with preexec_fn runs the fork hooks) once crashed here: the child
    destroyed its copy of the parent's database, whose threads fork does not copy."""
    import os
    import subprocess
    import sys

    assert connection().execute("SELECT 41 + 1").fetchone()[0] == 42
    done = subprocess.run([sys.executable, "-c", "print('exec')"], preexec_fn=lambda: None,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "exec"
    pid = os.fork()
    if pid == 0:  # the child: a query on a database of its own, then out without cleanup
        try:
            ok = connection().execute("SELECT sum(range) FROM range(1000)").fetchone()[0] == 499500
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert connection().execute("SELECT 1").fetchone()[0] == 1  # the parent's still works


def test_close_all_closes_the_databases_and_their_connections_and_the_next_connection_opens_a_new_one():
    old = connection(3)
    old.execute("CREATE TABLE kept AS SELECT 1 AS x")  # in the database, not a TEMP table of the cursor
    close_all()
    with pytest.raises(duckdb.ConnectionException):
        old.execute("SELECT 1")
    new = connection(3)
    with pytest.raises(duckdb.CatalogException):  # a new database: the old one's table is gone with it
        new.execute("SELECT * FROM kept")
    assert new.execute("SELECT current_setting('threads')").fetchone()[0] == 3
    new.close()
