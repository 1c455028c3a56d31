"""The embedded mode's one SQLite database, shared by its job, key, template and webhook stores."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


class SQLiteDatabase:
    """One connection per thread, all to one file in WAL mode.

    Readers never wait for each other or for a writer, so a long read in one thread (a large
    job list) or a write waiting for another process's lock holds up nobody else; writers
    take turns through SQLite's own lock, waiting up to ``busy_timeout`` for it.
    """

    def __init__(self, path: Path) -> None:
        _private(path)
        self.path = path
        self._local = threading.local()
        # Every thread's connection, so close() reaches them all; a connection whose thread
        # ended goes with the thread.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._registry_lock = threading.Lock()
        self._closed = False
        self._connection().execute("PRAGMA journal_mode=WAL")

    def _connection(self) -> sqlite3.Connection:
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._registry_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the database is closed")
                conn = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, factory=_Connection
                )
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=5000")
                self._connections.add(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """``durable``: the commit reaches the disk before this returns (``synchronous=FULL``),
        for writes the caller is told have happened, such as an accepted job. Other commits
        survive a crash of the process, and may be lost only with the power."""
        conn = self._connection()
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        cursor = self._connection().execute(sql, args)
        cursor.row_factory = sqlite3.Row
        return list(cursor.fetchall())

    def close(self) -> None:
        with self._registry_lock:
            self._closed = True
            connections = list(self._connections)
        for conn in connections:
            conn.close()


def _private(path: Path) -> None:
    """The data directory 0700 and the database files 0600: they hold webhook secrets.

    SQLite gives the ``-wal`` and ``-shm`` files the database file's mode, so creating that
    file 0600 first covers all three; the chmods fix data directories made before.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        path.parent.chmod(0o700)
    except PermissionError:  # another user's directory: its owner decides
        log.warning("cannot make %s private (mode 0700)", path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            file.chmod(0o600)
