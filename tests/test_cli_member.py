"""`relayflow member list|role|remove|reset-password` against a real database: each does
what /api/v1/members does, and an unknown member or the last admin is a clear error (exit 1)
that changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import Result
from sqlalchemy import select

from relayflow.services import auth as auth_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import AuditEvent, Member

Cli = Callable[..., Result]
PASSWORD = "correct horse"


@pytest.fixture
def acme(cli: Cli) -> Cli:
    """Workspace acme with an admin and a viewer."""
    assert cli("workspace", "create", "acme", "--json").exit_code == 0
    for email, role in (("ada@acme.test", "admin"), ("vic@acme.test", "viewer")):
        added = cli("member", "add", "acme", email, "--role", role, "--password", PASSWORD)
        assert added.exit_code == 0, added.output
    return cli


def members(runtime: Runtime) -> dict[str, str]:
    with session_scope(runtime.sessions) as session:
        return {m.email: m.role for m in session.scalars(select(Member))}


def audited(runtime: Runtime, action: str) -> list[tuple[str, dict[str, object]]]:
    with session_scope(runtime.sessions) as session:
        return [(e.actor, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == action))]


def test_list_shows_each_member_and_role(acme: Cli) -> None:
    table = acme("member", "list", "acme")
    as_json = acme("member", "list", "acme", "--json")

    assert table.exit_code == 0
    assert "ada@acme.test" in table.stdout
    assert "viewer" in table.stdout
    assert [(m["email"], m["role"]) for m in json.loads(as_json.stdout)] == [
        ("ada@acme.test", "admin"), ("vic@acme.test", "viewer")]


def test_role_changes_the_role(acme: Cli, runtime: Runtime) -> None:
    result = acme("member", "role", "acme", "VIC@acme.test", "operator")

    assert result.exit_code == 0, result.output
    assert "vic@acme.test is now operator in acme" in result.stdout
    assert members(runtime)["vic@acme.test"] == "operator"
    assert audited(runtime, "member.role")[0][0] == "cli"


def test_remove_removes_them(acme: Cli, runtime: Runtime) -> None:
    result = acme("member", "remove", "acme", "vic@acme.test")

    assert result.exit_code == 0, result.output
    assert "vic@acme.test removed from acme; 0 session(s) ended" in result.stdout
    assert "vic@acme.test" not in members(runtime)


def test_reset_password_prints_a_new_one_once(acme: Cli, runtime: Runtime) -> None:
    result = acme("member", "reset-password", "acme", "vic@acme.test")

    assert result.exit_code == 0, result.output
    said, password = result.stdout.strip().splitlines()
    assert said == "new password for vic@acme.test (shown once):"
    with session_scope(runtime.sessions) as session:
        member = session.scalars(select(Member).where(Member.email == "vic@acme.test")).one()
        assert auth_service.verify_password(member, password)
        assert not auth_service.verify_password(member, PASSWORD)
    [(actor, detail)] = audited(runtime, "member.password_reset")
    assert actor == "cli"
    assert password not in json.dumps(detail)
    again = acme("member", "reset-password", "acme", "vic@acme.test", "--json")
    assert json.loads(again.stdout)["password"] != password


@pytest.mark.parametrize(("args", "says"), [
    (("role", "acme", "ada@acme.test", "viewer"),
     "ada@acme.test is the last admin of this workspace"),
    (("remove", "acme", "ada@acme.test"), "ada@acme.test is the last admin of this workspace"),
    (("role", "acme", "vic@acme.test", "owner"), "role must be one of admin, operator, viewer"),
    (("role", "acme", "nobody@acme.test", "viewer"), "no member 'nobody@acme.test'"),
    (("remove", "acme", "nobody@acme.test"), "no member 'nobody@acme.test'"),
    (("reset-password", "acme", "nobody@acme.test"), "no member 'nobody@acme.test'"),
    (("list", "globex"), "no workspace 'globex'"),
])
def test_refusals_exit_1_and_change_nothing(
    acme: Cli, runtime: Runtime, args: tuple[str, ...], says: str
) -> None:
    before = members(runtime)

    result = acme("member", *args)

    assert result.exit_code == 1
    assert says in " ".join(result.stderr.split())
    assert members(runtime) == before
