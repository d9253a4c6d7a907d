"""Empty databases of the dialect under test, for tests that build a schema themselves
(migrations run from nothing, a database made by an earlier release)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from relayflow.storage.db import normalize_url

_names = itertools.count()


@contextmanager
def empty_database(like: str, directory: Path) -> Iterator[str]:
    """A new, empty database on the same server as `like` (a SQLite file in `directory`, or
    a PostgreSQL database `relayflow_empty_<pid>_<n>`, dropped afterwards)."""
    if not like.startswith("postgres"):
        yield f"sqlite:///{directory / f'empty_{next(_names)}.db'}"
        return
    name = f"relayflow_empty_{os.getpid()}_{next(_names)}"
    admin = create_engine(normalize_url(like), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield like.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
