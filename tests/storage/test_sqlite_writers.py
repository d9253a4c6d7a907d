"""SQLite: writers queue, the threads of a process on a lock of their own and the processes on
a file lock beside the database (both held from BEGIN IMMEDIATE to COMMIT or ROLLBACK);
readers take no lock, and a write in a read scope is refused."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from relayflow.storage import db
from relayflow.storage.db import (
    WriteInReadScope,
    make_engine,
    make_sessionmaker,
    read_scope,
    session_scope,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "writers.db"


@pytest.fixture
def engine(path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "_WRITER_WAIT_SECONDS", 0.2)


def _held(sessions: sessionmaker[Session], *, fail: bool = False) -> tuple[
        threading.Event, threading.Event, threading.Thread]:
    """A thread that writes, then holds its transaction open until released."""
    began, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with session_scope(sessions) as session:
                session.execute(text("INSERT INTO t VALUES (1)"))
                began.set()
                release.wait(10)
                if fail:
                    raise ValueError("rolled back")
        except ValueError:
            pass

    thread = threading.Thread(target=hold)
    thread.start()
    assert began.wait(10)
    return began, release, thread


def _write(sessions: sessionmaker[Session], n: int) -> None:
    with session_scope(sessions) as session:
        session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})


def _count(sessions: sessionmaker[Session]) -> int:
    with read_scope(sessions) as session:
        return int(session.scalar(text("SELECT count(*) FROM t")) or 0)


@pytest.mark.usefixtures("short_wait")
@pytest.mark.parametrize("fail", [False, True], ids=["commit", "rollback"])
def test_a_writer_waits_for_the_one_in_progress_and_goes_once_it_ends(
    sessions: sessionmaker[Session], path: Path, fail: bool,
) -> None:
    _, release, thread = _held(sessions, fail=fail)
    assert db._writer_lock(str(path)).locked()
    with pytest.raises(OperationalError, match="database is locked"):
        _write(sessions, 2)  # queued behind the open transaction past the (shortened) wait
    assert _count(sessions) == 0  # readers are not held up, and see only what is committed
    release.set()
    thread.join(10)
    assert not db._writer_lock(str(path)).locked()
    _write(sessions, 3)
    assert _count(sessions) == (1 if fail else 2)


def test_writers_of_many_threads_all_get_through(sessions: sessionmaker[Session]) -> None:
    threads = [threading.Thread(target=lambda i=i: [_write(sessions, i) for _ in range(25)])
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert _count(sessions) == 200


@pytest.mark.usefixtures("short_wait")
def test_the_lock_is_let_go_when_begin_fails(
    path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process holding the file's write lock makes BEGIN IMMEDIATE give up after
    SQLite's busy timeout; the process's own lock must not stay taken."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 50)
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    sessions = make_sessionmaker(engine)
    outsider = sqlite3.connect(path, isolation_level=None, timeout=0)
    outsider.execute("BEGIN IMMEDIATE")
    with pytest.raises(OperationalError, match="locked"):
        _write(sessions, 1)
    outsider.execute("ROLLBACK")
    outsider.close()
    _write(sessions, 2)  # would wait out the shortened writer wait and fail if still held
    assert _count(sessions) == 1
    engine.dispose()


def test_a_write_in_a_read_scope_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(WriteInReadScope), read_scope(sessions) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    assert _count(sessions) == 0


_HOLDER = """
import sys
from sqlalchemy import text
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
sessions = make_sessionmaker(make_engine(sys.argv[1]))
with session_scope(sessions) as session:
    session.execute(text("INSERT INTO t VALUES (1)"))
    print("began", flush=True)
    sys.stdin.readline()
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    """Another process with a write transaction open until told (or killed)."""
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, f"sqlite:///{path}"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "began\n"
    return process


@pytest.mark.usefixtures("short_wait")
def test_writers_of_other_processes_queue_on_the_file_lock_too(
    sessions: sessionmaker[Session], path: Path,
) -> None:
    """The wait for another process ends as ours does (after the shortened 0.2 s, where
    SQLite's busy timeout is a minute): processes queue on the lock beside the file, so a
    writer learns within a millisecond that the file is free instead of sleeping up to
    100 ms between looks at it. The holder committing or being killed frees it."""
    holder = _holder(path)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="database is locked"):
            _write(sessions, 2)
        assert time.monotonic() - started < 5
        assert not db._writer_lock(str(path)).locked()  # given back with the failed wait
        assert holder.stdin is not None
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        _write(sessions, 3)
        assert _count(sessions) == 2

        killed = _holder(path)
        killed.kill()  # SIGKILL mid-transaction: the kernel lets go of the file lock
        killed.wait(10)
        _write(sessions, 4)
        assert _count(sessions) == 3  # the killed one's insert was never committed
    finally:
        if holder.poll() is None:
            holder.kill()


def test_the_file_lock_sits_beside_the_database(sessions: sessionmaker[Session],
                                                path: Path) -> None:
    _write(sessions, 1)
    lock_file = Path(f"{path}-writers")
    assert lock_file.exists()
    assert lock_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("short_wait")
def test_a_forked_child_queues_behind_its_parent(sessions: sessionmaker[Session],
                                                 path: Path) -> None:
    """A child inherits its parent's open lock file, and flock() belongs to the open file:
    sharing it, the child would take the lock while its parent holds it (and SQLite, whose
    lock bookkeeping a child inherits too, would then let it write beside its parent). It
    opens its own, and waits."""
    _write(sessions, 1)  # the parent has its lock file open
    go, told = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            os.read(go, 1)  # the parent now holds a write transaction
            started = time.monotonic()
            try:
                _write(make_sessionmaker(make_engine(f"sqlite:///{path}")), 2)
            except OperationalError:
                code = 0 if time.monotonic() - started < 5 else 2
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, release, thread = _held(sessions)
    os.write(told, b"x")
    _, status = os.waitpid(child, 0)
    release.set()
    thread.join(10)
    os.close(go)
    os.close(told)
    assert os.waitstatus_to_exitcode(status) == 0


_POLITE = """
import sys
from sqlalchemy import text
from relayflow.storage import db
db.give_way()
db._GIVE_WAY_SECONDS = float(sys.argv[2])
sessions = db.make_sessionmaker(db.make_engine(sys.argv[1]))
print("writing", flush=True)
with db.session_scope(sessions) as session:
    session.execute(text("INSERT INTO t VALUES (7)"))
print("wrote", flush=True)
"""


def _polite_writer(path: Path, give_way_seconds: float) -> subprocess.Popen[str]:
    """Another process that gives way (as the worker does), writing one row."""
    process = subprocess.Popen(
        [sys.executable, "-c", _POLITE, f"sqlite:///{path}", str(give_way_seconds)],
        stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "writing\n"
    return process


def _someone_waits(path: Path) -> bool:
    """Whether a writer that does not give way is waiting (holds the waiting file)."""
    fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it any lock this description took
    return False


@contextmanager
def _waiting_writer(path: Path) -> Iterator[None]:
    """Stands for a writer of another process that is waiting: the shared hold it keeps."""
    fd = os.open(f"{path}-waiting", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(fd)


def test_a_process_that_gives_way_writes_after_a_waiting_writer(
        sessions: sessionmaker[Session], path: Path) -> None:
    """The file is free, but while another writer waits, the polite process does not take
    it; once none waits, it writes at once."""
    _write(sessions, 1)
    with _waiting_writer(path):
        polite = _polite_writer(path, give_way_seconds=30)
        time.sleep(0.5)
        assert polite.poll() is None
        assert _count(sessions) == 1  # the free file was left to the waiting writer
    assert polite.wait(10) == 0
    assert _count(sessions) == 2


def test_giving_way_lasts_a_moment_only(sessions: sessionmaker[Session], path: Path) -> None:
    """A writer that waits for ever (or a stream of them) holds a polite process back for
    its give-way time, then it takes its turn like any other."""
    _write(sessions, 1)
    with _waiting_writer(path):
        started = time.monotonic()
        polite = _polite_writer(path, give_way_seconds=0.2)
        assert polite.wait(10) == 0
        assert time.monotonic() - started >= 0.2
        assert _count(sessions) == 2


def test_a_waiting_writer_says_it_waits_until_it_has_the_file(
        sessions: sessionmaker[Session], path: Path) -> None:
    holder = _holder(path)
    writer = threading.Thread(target=_write, args=(sessions, 2))
    try:
        assert not _someone_waits(path)
        writer.start()
        deadline = time.monotonic() + 10
        while not _someone_waits(path):
            assert time.monotonic() < deadline, "the waiting writer never said so"
            time.sleep(0.01)
        assert holder.stdin is not None
        holder.stdin.write("commit\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        writer.join(10)
        assert _count(sessions) == 2
        assert not _someone_waits(path)  # let go once it had the file
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_checkpoint_copies_the_wal_into_the_database_file(
        engine: Engine, sessions: sessionmaker[Session], path: Path) -> None:
    """What a prune wrote reaches the database file in its rest, not in a later commit."""
    mark = b"checkpointed-marker-7f3a"
    with session_scope(sessions) as session:
        session.execute(text("CREATE TABLE notes (body TEXT)"))
        session.execute(text("INSERT INTO notes VALUES (:b)"), {"b": mark.decode()})
    assert mark in Path(f"{path}-wal").read_bytes()
    assert mark not in path.read_bytes()  # only the WAL holds it so far
    db.checkpoint(engine)
    assert mark in path.read_bytes()
    assert _count(sessions) == 0  # and the database still answers
