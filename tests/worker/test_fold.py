"""Workers fold run count changes into the hourly rollup from their loop, once a second."""

from __future__ import annotations

from sqlalchemy import text

from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, read_scope
from relayflow.storage.repositories import rollup
from relayflow.worker import loop
from relayflow.worker.loop import Worker
from tests.support.flows import install, start

FLOW = {"key": "note", "trigger": {"type": "manual"}, "start": "done",
        "nodes": {"done": {"type": "END"}}}


def _pending(runtime: Runtime) -> int:
    with read_scope(runtime.sessions) as session:
        return rollup.pending(session, rollup.RUNS)


def test_the_loop_folds_changes_then_waits_a_second(settings, runtime, workspace) -> None:
    install(runtime, workspace.id, FLOW)
    start(runtime, workspace.id, "note", count=3)
    assert _pending(runtime) == 3
    worker = Worker(runtime, settings)
    assert worker.fold_once() == 3
    assert _pending(runtime) == 0
    start(runtime, workspace.id, "note", count=2)
    assert not worker.fold_once()  # not yet time to fold again
    assert _pending(runtime) == 2


def test_the_changes_are_vacuumed_after_enough_folds(settings, runtime, workspace,
                                                     is_postgres, monkeypatch) -> None:
    """PostgreSQL keeps a deleted row until a vacuum, and a count reads the changes table
    whole: the worker vacuums it itself, in case autovacuum is off."""
    monkeypatch.setattr(loop, "VACUUM_AFTER", 2)
    install(runtime, workspace.id, FLOW)
    start(runtime, workspace.id, "note", count=2)
    Worker(runtime, settings).fold_once()
    if is_postgres:
        with read_scope(runtime.sessions) as session:
            vacuumed = session.execute(text(
                "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
                "AND relname LIKE '%count_changes'")).scalars().all()
        assert sorted(vacuumed) == ["delivery_count_changes", "run_count_changes"]


def test_a_failing_fold_is_logged_and_the_loop_goes_on(settings, tmp_path, caplog) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/missing/relayflow.db")
    broken = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher("k"))
    try:
        assert not Worker(broken, settings).fold_once()
    finally:
        engine.dispose()
    assert "run count fold failed" in caplog.text
