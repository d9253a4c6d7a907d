"""`relayflow trigger --contact` refuses an address with hidden characters, naming the field,
and starts no run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import func, select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, WorkflowRun

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(("contact", "field"), [
    ("ada\u202e@example.com", "email"),
    ("ada\u200b@example.com", "email"),
    ("ada\x1b@example.com", "email"),
    ("+1 415\u200b555 0123", "phone"),
])
def test_trigger_refuses_hidden_characters(
    cli: Callable[..., Result], runtime: Runtime, contact: str, field: str
) -> None:
    cli("workspace", "create", "acme", "--json")
    assert cli("apply", str(EXAMPLES / "lead-score.yaml"), "-w", "acme").exit_code == 0

    result = cli("trigger", "lead-score", "--contact", contact, "-w", "acme")

    assert result.exit_code == 1
    assert f"{field} holds an invisible or control character" in result.stderr
    with session_scope(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(WorkflowRun)) == 0
        assert session.scalar(select(func.count()).select_from(Contact)) == 0
