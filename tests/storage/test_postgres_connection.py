"""What every PostgreSQL connection the product opens is set up with."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from relayflow.storage.db import make_engine


@pytest.fixture
def pg_url(db_url: str) -> str:
    if not db_url.startswith("postgres"):
        pytest.skip("PostgreSQL only: set RELAYFLOW_TEST_DATABASE_URL")
    return db_url


def _show(url: str, setting: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text(f"SHOW {setting}")).scalar_one())
    finally:
        engine.dispose()


def test_no_query_is_compiled_by_the_jit(pg_url):
    assert _show(pg_url, "jit") == "off"


def test_options_in_the_url_win(pg_url):
    assert _show(pg_url + "?options=-c%20jit%3Don", "jit") == "on"
