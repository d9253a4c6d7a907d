"""Wake idle workers as soon as work is enqueued: LISTEN/NOTIFY on PostgreSQL.

SQLite has no such channel; there workers poll (and `serve` wakes its embedded worker
in-process), so both functions are no-ops there.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "relayflow_jobs"


def notify(session: Session) -> None:
    """Signal new due work; delivered when (and only if) the transaction commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """A dedicated autocommit connection LISTENing for job notifications."""

    def __init__(self, engine: Engine) -> None:
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._conn: Any = None

    @classmethod
    def for_engine(cls, engine: Engine) -> Listener | None:
        return cls(engine) if engine.dialect.name == "postgresql" else None

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True if a notification arrived."""
        import psycopg

        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True)
                self._conn.execute(f"LISTEN {CHANNEL}")
            got = False
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except psycopg.Error:
            log.warning("job listener lost its connection; polling until it is back")
            self.close()
            return False

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
