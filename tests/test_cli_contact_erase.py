"""`relayflow contact erase`: the contact's personal data goes, its run stays; an unknown id
or a missing reason is a clear error that erases nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, WorkflowRun

EXAMPLES = Path(__file__).parent.parent / "examples"


def _ada(cli, runtime: Runtime) -> str:  # type: ignore[no-untyped-def]
    cli("workspace", "create", "acme", "--json")
    assert cli("apply", str(EXAMPLES / "lead-score.yaml"), "-w", "acme").exit_code == 0
    assert cli("trigger", "lead-score", "--contact", "ada@example.com",
               "-w", "acme").exit_code == 0
    with session_scope(runtime.sessions) as session:
        return str(session.scalars(select(Contact.id)).one())


def test_erase_scrubs_the_contact_and_keeps_its_run(cli, runtime) -> None:
    contact_id = _ada(cli, runtime)
    result = cli("contact", "erase", contact_id, "--reason", "erasure request", "--yes",
                 "-w", "acme")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert f"contact {contact_id} erased: 1 runs and 0 messages scrubbed" in said
    with session_scope(runtime.sessions) as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.email, contact.erased_at is not None) == (None, True)
        [run] = session.scalars(select(WorkflowRun)).all()
        assert run.trigger_payload == {}


@pytest.mark.parametrize(("args", "says"), [
    (("--reason", ""), "reason is required"),
    (("--reason", "asked"), "no contact"),
])
def test_bad_input_erases_nothing(cli, runtime, args, says) -> None:
    contact_id = _ada(cli, runtime)
    target = contact_id if args[1] == "" else "0190c2d4-0000-7000-8000-000000000000"
    result = cli("contact", "erase", target, *args, "--yes", "-w", "acme")
    assert result.exit_code == 1
    assert says in result.stderr
    with session_scope(runtime.sessions) as session:
        assert session.scalars(select(Contact.email)).one() == "ada@example.com"
