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
from sqlalchemy import delete, select

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

    def test_hashes_written_with_a_salt_each_still_sign_in_and_come_to_share_one(
        self, runtime: Runtime
    ) -> None:
        _add(runtime, "old@example.com", ["legacy-a", "legacy-b"])
        with session_scope(runtime.sessions) as session:  # as written before salts were shared
            for member in session.scalars(select(Member).where(Member.email == "old@example.com")):
                member.password_hash = auth_service.password_hasher.hash(PASSWORD)
        assert len(set(_salts(runtime, "old@example.com"))) == 2
        assert _sign_in(runtime, "old@example.com", "wrong password", "a") == []
        assert _sign_in(runtime, "old@example.com", PASSWORD, "a") == ["legacy-a", "legacy-b"]
        assert len(set(_salts(runtime, "old@example.com"))) == 1
        assert _sign_in(runtime, "old@example.com", PASSWORD, "a") == ["legacy-a", "legacy-b"]

    def test_an_addresss_memberships_share_a_random_salt_no_one_can_compute_ahead(
        self, runtime: Runtime
    ) -> None:
        _add(runtime, "ann@example.com", ["alpha", "beta"])
        _add(runtime, "ann@example.com", ["gamma"], password="another password")
        _add(runtime, "bob@example.com", ["delta"])
        [ann] = set(_salts(runtime, "ann@example.com"))
        [bob] = set(_salts(runtime, "bob@example.com"))
        assert ann != bob
        # Not derived from the address: the same address elsewhere gets another salt.
        with session_scope(runtime.sessions) as session:
            session.execute(delete(Member).where(Member.email == "ann@example.com"))
        _add(runtime, "ann@example.com", ["epsilon"])
        assert set(_salts(runtime, "ann@example.com")) != {ann}


def _salts(runtime: Runtime, email: str) -> list[str]:
    with session_scope(runtime.sessions) as session:
        hashes = session.scalars(select(Member.password_hash).where(Member.email == email))
        return [h.split("$")[4] for h in hashes]
