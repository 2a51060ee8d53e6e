"""DuckDB connections: cursors of one in-memory database per process (per thread count).

Opening a new in-memory database costs 35-50 ms on the development machine, a cursor of an open
one 0.3 ms (2026-12-02), and a batch opened a few per chunk (the parse, the mart's feed) and per
update. A cursor is a connection of its own: its settings, registered views and TEMP tables are
its own and go with it when it is closed; only the database (its threads, its memory) is shared.
"""

from __future__ import annotations

import atexit
import os
import threading

import duckdb

_LOCK = threading.Lock()
# (process id, threads) -> the database. Keyed by process: a forked child opens its own, and
# leaves its parent's alone (destroying one there would wait for threads fork did not copy).
_DATABASES: dict[tuple[int, int | None], duckdb.DuckDBPyConnection] = {}


def connection(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A new connection to this process's database of ``threads`` threads (None: DuckDB's default,
    one per core)."""
    key = (os.getpid(), threads)
    with _LOCK:
        database = _DATABASES.get(key)
        if database is None:
            database = _DATABASES[key] = duckdb.connect(config={"threads": threads} if threads else {})
        return database.cursor()


def close_all() -> None:
    """Close this process's databases (their cursors with them); the next connection opens a new one.

    Run at exit: the databases' threads are joined while the interpreter is whole, not in its
    teardown, where destroying a database that still has threads is a known way for DuckDB's
    Python bindings to hang. (A `lake` command that ends with ``os._exit`` skips it, and needs not.)
    """
    with _LOCK:
        mine = [key for key in _DATABASES if key[0] == os.getpid()]
        databases = [_DATABASES.pop(key) for key in mine]
    for database in databases:
        database.close()


atexit.register(close_all)


def _new_lock() -> None:
    """In a forked child: a lock of its own (a thread of the parent may have held the parent's)."""
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock)
