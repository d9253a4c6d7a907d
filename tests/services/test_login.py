"""Sign-in costs the same whatever the address: unknown, or a member of one or many workspaces.

The timing test uses the production Argon2 cost: with the suite's cheap hasher (conftest.py)
a hash takes about a millisecond and the difference drowns in database noise.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from relayflow.errors import Unauthorized
from relayflow.services import auth as auth_service
from relayflow.services import login as login_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Member
from tests.conftest import make_workspace

PASSWORD = "correct horse battery"


def _add(runtime: Runtime, email: str, slugs: list[str], password: str = PASSWORD) -> None:
    for slug in slugs:
        workspace = make_workspace(runtime, slug)
        with session_scope(runtime.sessions) as session:
            auth_service.add_member(session, workspace_id=workspace.id, email=email,
                                    role="operator", password=password, now=datetime.now(UTC))


def _sign_in(runtime: Runtime, email: str, password: str, address: str) -> list[str]:
    """Slugs of the workspaces opened; [] when refused."""
    try:
        with session_scope(runtime.sessions) as session:
            _, viewer = login_service.login(session, email=email, password=password,
                                            address=address, now=datetime.now(UTC))
            return [w.slug for w in viewer.workspaces]
    except Unauthorized:
        return []


def _failed_sign_in_seconds(runtime: Runtime, email: str, attempt: int) -> float:
    started = time.perf_counter()
    assert _sign_in(runtime, email, "wrong password", f"10.0.0.{attempt}") == []
    return time.perf_counter() - started


class TestLoginTiming:
    def test_a_failed_sign_in_takes_as_long_for_one_three_or_no_workspaces(
        self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(auth_service, "password_hasher", PasswordHasher())
        _add(runtime, "one@example.com", ["one-a"])
        _add(runtime, "three@example.com", ["three-a", "three-b", "three-c"])
        times: dict[str, list[float]] = {"one": [], "three": [], "unknown": []}
        for attempt in range(3):  # interleaved, so machine load hits every case alike
            for who in times:
                times[who].append(_failed_sign_in_seconds(runtime, f"{who}@example.com",
                                                          attempt))
        median = {who: statistics.median(t) for who, t in times.items()}
        # One Argon2 hash each: the ratios sit near 1. Hashing per membership made "three"
        # about 3x "unknown"; 1.6 leaves room for a loaded machine.
        assert median["three"] / median["one"] < 1.6, median
        assert median["three"] / median["unknown"] < 1.6, median
        assert median["one"] / median["unknown"] < 1.6, median
        assert median["unknown"] / median["three"] < 1.6, median


class TestLogin:
    def test_one_password_opens_every_workspace_where_it_is_the_members_password(
        self, runtime: Runtime
    ) -> None:
        _add(runtime, "ann@example.com", ["alpha", "beta"])
        _add(runtime, "ann@example.com", ["gamma"], password="another password")
        assert _sign_in(runtime, "ann@example.com", PASSWORD, "a") == ["alpha", "beta"]
        assert _sign_in(runtime, "Ann@Example.com", "another password", "a") == ["gamma"]
        assert _sign_in(runtime, "ann@example.com", "nope nope", "a") == []

    def test_a_hash_written_before_per_address_salts_still_signs_in_and_is_rewritten(
        self, runtime: Runtime
    ) -> None:
        _add(runtime, "old@example.com", ["legacy"])
        with session_scope(runtime.sessions) as session:
            member = session.scalars(select(Member).where(Member.email == "old@example.com")
                                     ).one()
            member.password_hash = auth_service.password_hasher.hash(PASSWORD)  # random salt
        assert _sign_in(runtime, "old@example.com", "wrong password", "a") == []
        assert _sign_in(runtime, "old@example.com", PASSWORD, "a") == ["legacy"]
        with session_scope(runtime.sessions) as session:
            stored = session.scalars(select(Member.password_hash)
                                     .where(Member.email == "old@example.com")).one()
        assert stored == auth_service.hash_password("old@example.com", PASSWORD)
        assert _sign_in(runtime, "old@example.com", PASSWORD, "a") == ["legacy"]
