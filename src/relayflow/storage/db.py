"""Engines and sessions. Dialect differences (SQLite pragmas, driver names) live here."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

# libpq connection options for PostgreSQL, so that a database that went away is noticed
# in seconds instead of hanging a worker: a connect gives up after 10 s, an idle
# connection is probed after 10 s and dropped after 3 unanswered probes 5 s apart, and
# data left unacknowledged for 30 s (a peer that vanished mid-query) closes the
# connection. No query is compiled by the server's JIT: it is worth its cost only for
# long analytical queries, and the ones here that are large enough to trigger it (a month
# of failures grouped by cause, at ten million runs) spent more compiling (180 ms) than
# it saved. A value given in the database URL's query string wins over these.
POSTGRES_CONNECT_DEFAULTS: dict[str, int | str] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
    "options": "-c jit=off",
}


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def in_memory(url: str) -> bool:
    """An SQLite database that lives in one process's memory (no other process sees it)."""
    parsed = make_url(normalize_url(url))
    if not parsed.drivername.startswith("sqlite"):
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


# Both pools hold more connections than the web app admits requests at once
# (Settings.max_concurrent_requests, 16), leaving room for a worker in the same process.
def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False,
                               "factory": _QueuedWriterConnection},
            pool_size=10, max_overflow=10, **kwargs,
        )
        _configure_sqlite(engine)
        _refuse_writes(engine)
        return engine
    # pre-ping: a pooled connection that died while the database was away (a restart, a
    # cut) is replaced at checkout instead of failing the next transaction.
    connect_args = {**postgres_connect_args(url), **kwargs.pop("connect_args", {})}
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                           connect_args=connect_args, **kwargs)
    _refuse_writes(engine)
    return engine


def postgres_connect_args(url: str | URL) -> dict[str, int | str]:
    """POSTGRES_CONNECT_DEFAULTS less the options the URL sets itself."""
    query = make_url(url).query
    return {k: v for k, v in POSTGRES_CONNECT_DEFAULTS.items() if k not in query}


# SQLSTATEs of a server that is going away or not yet back: admin_shutdown,
# crash_shutdown, cannot_connect_now ("the database system is starting up").
_SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` means the database could not be reached or the connection was lost
    (a restart, a network cut, a refused connect): something to wait out. A fault in the
    statement itself (a deadlock, a constraint, a timeout) is not."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    import psycopg

    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(cause, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    state = cause.sqlstate
    return state is None or state.startswith("08") or state in _SERVER_GOING_AWAY


def is_conflict(exc: BaseException) -> bool:
    """True when PostgreSQL rolled the transaction back to break a conflict with another
    one (a deadlock, a serialization failure: SQLSTATE class 40); trying again is the
    remedy."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(cause, "sqlstate", None)
    return isinstance(state, str) and state.startswith("40")


def is_lock_timeout(exc: BaseException) -> bool:
    """True when PostgreSQL gave up waiting for a lock (lock_timeout: SQLSTATE 55P03)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(cause, "sqlstate", None) == "55P03"


# One SQLite file has one writer at a time. Left to SQLite, a writer that finds the file
# locked sleeps in its busy handler (1, 2, 5 … 100 ms between tries) and is not told when the
# lock is free, so under load most of a transaction's time is spent asleep, and a process
# whose writes follow each other closely keeps the file from the others for as long as it
# goes on. Writers queue instead, on two locks held from BEGIN IMMEDIATE to COMMIT or
# ROLLBACK: the threads of a process on a lock of the process, which hands over the moment
# the last writer ends; then the processes on an flock() of a file beside the database,
# tried every millisecond at most (the kernel lets it go with the process, even a killed
# one). SQLite's busy timeout still arbitrates with programs that take neither.
#
# A process can also give way (`give_way`, the worker's): while a writer of another process
# waits, it lets that writer go first, for up to _GIVE_WAY_SECONDS per transaction. A webhook
# is then answered after at most the transaction in progress, not after every worker commit
# that happened to poll first. Waiting writers that do not give way hold a shared lock on a
# second file, `<database>-waiting`, for as long as they wait; one that gives way takes that
# lock exclusively for an instant before each try, and finding it held, waits.
_WRITER_WAIT_SECONDS = 60.0
_FILE_LOCK_POLL_SECONDS = (0.0001, 0.00025, 0.0005, 0.001)  # then 1 ms until it is free
_GIVE_WAY_SECONDS = 0.1
BUSY_TIMEOUT_MS = 60_000  # SQLite's own wait for another program's write lock
_giving_way = False


def give_way() -> None:
    """From now on, this process's SQLite writers let writers of other processes that are
    waiting go first (see above)."""
    global _giving_way
    _giving_way = True


def _open_beside(path: str, suffix: str) -> int | None:
    try:
        return os.open(f"{path}{suffix}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # a directory this process may not write: SQLite's busy timeout alone
        return None


class _WriterLock:
    """The writer queue of one database file in this process."""

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._fd = _open_beside(path, "-writers")
        self._waiting = _open_beside(path, "-waiting") if self._fd is not None else None

    def locked(self) -> bool:
        return self._threads.locked()

    def acquire(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            return False
        if self._fd is None:
            return True
        # Said while waiting; an exclusive hold of it lasts an instant (_others_waiting).
        says = None if _giving_way else self._waiting
        if says is not None:
            fcntl.flock(says, fcntl.LOCK_SH)
        try:
            if self._wait_for_file(deadline):
                return True
        finally:
            if says is not None:
                fcntl.flock(says, fcntl.LOCK_UN)
        self._threads.release()
        return False

    def _wait_for_file(self, deadline: float) -> bool:
        assert self._fd is not None
        polite_until = time.monotonic() + _GIVE_WAY_SECONDS if _giving_way else 0.0
        pauses = iter(_FILE_LOCK_POLL_SECONDS)
        while True:
            if time.monotonic() >= polite_until or not self._others_waiting():
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(next(pauses, _FILE_LOCK_POLL_SECONDS[-1]))

    def _others_waiting(self) -> bool:
        if self._waiting is None:
            return False
        try:
            fcntl.flock(self._waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._waiting, fcntl.LOCK_UN)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def forget(self) -> None:
        """In a forked child: the parent's file description stays the parent's."""
        for fd in (self._fd, self._waiting):
            if fd is not None:
                os.close(fd)  # the lock belongs to the description, which the parent keeps
        self._fd = self._waiting = None


_writer_locks: dict[str, _WriterLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(path: str) -> _WriterLock:
    key = os.path.realpath(path)
    with _writer_locks_guard:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = _writer_locks[key] = _WriterLock(key)
        return lock


def _after_fork_in_child() -> None:
    # A child shares its parent's open lock files, and with them the parent's flock():
    # it opens its own when it first writes.
    global _writer_locks_guard
    _writer_locks_guard = threading.Lock()
    for lock in _writer_locks.values():
        lock.forget()
    _writer_locks.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _QueuedWriterConnection(sqlite3.Connection):
    """A connection whose write transactions hold the process's writer lock of its file from
    BEGIN IMMEDIATE to COMMIT or ROLLBACK."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        name = str(database)
        if name.startswith("file:"):  # an SQLite URI
            uri = urlsplit(name)
            name = ":memory:" if "mode=memory" in uri.query else unquote(uri.path)
        # An in-memory database belongs to its connection: nothing to queue for.
        self._lock = None if name in ("", ":memory:") else _writer_lock(name)
        self._holding = False

    def take_writer_lock(self) -> bool:
        """Wait for this file's writer lock (False after _WRITER_WAIT_SECONDS)."""
        if self._lock is not None and not self._holding:
            if not self._lock.acquire(_WRITER_WAIT_SECONDS):
                return False
            self._holding = True
        return True

    def release_writer_lock(self) -> None:
        if self._holding:
            self._holding = False
            assert self._lock is not None
            self._lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer_lock()


MMAP_BYTES = 1 << 30


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE so writers queue instead of
    failing with 'database is locked' halfway through a transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Read the file through a memory map instead of a read() per page: half the time of
        # a long read at a million runs (the pages come from the OS cache either way).
        cursor.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read scope's transaction takes no lock until it reads, and never the write
        # lock: readers do not queue behind writers (WAL), nor writers behind readers.
        if conn.get_execution_options().get(READS_ONLY, False):
            conn.exec_driver_sql("BEGIN")
            return
        raw = conn.connection.dbapi_connection
        if not raw.take_writer_lock():
            raise OperationalError("BEGIN IMMEDIATE", None,
                                   sqlite3.OperationalError("database is locked"))
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            raw.release_writer_lock()
            raise


READS_ONLY = "relayflow_reads_only"


class WriteInReadScope(RuntimeError):
    """A statement that writes ran in a `read_scope` (a bug: use session_scope)."""


def _refuse_writes(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _check(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.get_execution_options().get(READS_ONLY, False) and not statement.lstrip()[
                :6].upper().startswith(("SELECT", "WITH", "BEGIN", "PRAGMA")):
            raise WriteInReadScope(f"a write in a read-only transaction: {statement[:60]}")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The transaction boundary: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that only reads: on SQLite it takes no write lock (plain BEGIN), so it
    neither waits for a writer nor holds one up. A write inside it raises
    WriteInReadScope on both databases."""
    session = factory()
    try:
        session.connection(execution_options={READS_ONLY: True})
        yield session
        session.commit()  # ends it as a commit would: what was read stays loaded
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else (
        session_or_engine
    )
    return bind.dialect.name == "postgresql"


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the pages the WAL holds back into the database file now, waiting for no
    one (PASSIVE). Otherwise the first commit past a thousand pages does it, whatever writer
    that is, and it does it holding the write lock (in COMMIT, before this module's writer
    queue lets go): after a batch of deletes, a request's one-row write would pay for it."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cursor.fetchall()
        cursor.close()
    finally:
        raw.close()
