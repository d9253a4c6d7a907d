"""Finding or creating the contacts of many requests at once gives each the contact it alone
would have got."""

from __future__ import annotations

from datetime import UTC, datetime

from relayflow.services import contact as contact_service
from relayflow.storage.db import session_scope

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_many_at_once_resolve_as_one_at_a_time(runtime, workspace) -> None:
    with session_scope(runtime.sessions) as session:
        ada = contact_service.resolve(session, workspace_id=workspace.id, now=NOW,
                                      spec={"email": "ada@example.com"})
        bob = contact_service.resolve(session, workspace_id=workspace.id, now=NOW,
                                      spec={"phone": "+14155550123"})
    specs = [
        {"email": "ADA@example.com", "phone": "+14155550123"},  # email is looked at first
        {"phone": "+1 415 555 0123"},
        {"email": "new@example.com"},
        {"email": "other@example.com", "external_id": "crm-7"},
        {"email": "New@Example.com"},  # the contact the third created
        {"external_id": "crm-7"},
    ]
    with session_scope(runtime.sessions) as session:
        found = contact_service.resolve_many(session, workspace_id=workspace.id, specs=specs,
                                             now=NOW)
        ids = [c.id for c in found]
    with session_scope(runtime.sessions) as session:
        one_by_one = [contact_service.resolve(session, workspace_id=workspace.id, spec=spec,
                                              now=NOW).id for spec in specs]
    assert ids[:2] == [ada.id, bob.id]
    assert ids[2] == ids[4]
    assert ids[3] == ids[5]
    assert len(set(ids)) == 4
    assert ids == one_by_one  # what resolve, one spec at a time, finds afterwards
