"""Wake idle workers as soon as work is enqueued: LISTEN/NOTIFY on PostgreSQL.

SQLite has no such channel; there workers poll (and `serve` wakes its worker processes
through a pipe, see worker/process.py), so both functions are no-ops there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from relayflow.storage.db import postgres_connect_args

log = logging.getLogger(__name__)
CHANNEL = "relayflow_jobs"


def notify(session: Session) -> None:
    """Signal new due work; delivered when (and only if) the transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """A dedicated autocommit connection LISTENing for job notifications.

    When the connection dies (a restart, a network cut) the worker keeps polling, and the
    listener reconnects with a doubling pause between attempts (up to `retry_max_seconds`),
    saying so once when the connection is lost and once when it is back."""

    def __init__(self, engine: Engine, *, retry_max_seconds: float = 5.0) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._connect_args: dict[str, Any] = dict(postgres_connect_args(engine.url))
        self._retry_max = retry_max_seconds
        self._conn: Any = None
        self._failures = 0
        self._retry_at = 0.0

    @classmethod
    def for_engine(cls, engine: Engine, *, retry_max_seconds: float = 5.0) -> Listener | None:
        if engine.dialect.name != "postgresql":
            return None
        return cls(engine, retry_max_seconds=retry_max_seconds)

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if a notification arrived."""
        import psycopg

        if self._conn is None and time.monotonic() < self._retry_at:
            time.sleep(timeout)  # between reconnect attempts the worker only polls
            return False
        try:
            if self._conn is None:
                self._conn = self._connect()
            got = False
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except psycopg.Error as exc:
            self._lost(exc)
            return False

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._url, autocommit=True, **self._connect_args)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()
            raise
        if self._failures:
            log.warning("job listener reconnected")
        self._failures = 0
        return conn

    def _lost(self, exc: BaseException) -> None:
        if self._failures == 0:
            log.warning("job listener lost its connection (%s); polling until it is back",
                        type(exc).__name__)
        self._failures += 1
        self._retry_at = time.monotonic() + min(self._retry_max, 0.25 * 2.0 ** self._failures)
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
