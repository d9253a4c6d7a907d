"""What a run does not have is stored as SQL NULL, never as the JSON value null: a step
without a request or response costs a bit of the row's null bitmap instead of a JSON value
per column, on both databases."""

from __future__ import annotations

from sqlalchemy import text

from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from tests.conftest import WorkspaceHandle
from tests.support.flows import install
from tests.support.worker import drain

FLOW = {"key": "nulls", "trigger": {"type": "manual"}, "start": "tag", "nodes": {
    "tag": {"type": "UPDATE_CONTACT", "set": {"plan": "pro"}, "next": "done"},
    "done": {"type": "END"}}}


def test_steps_without_a_request_store_sql_null(runtime: Runtime,
                                                workspace: WorkspaceHandle) -> None:
    install(runtime, workspace.id, FLOW)
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace.id, key="nulls")
        contact = contact_service.resolve(session, workspace_id=workspace.id,
                                          spec={"email": "ada@example.com"},
                                          now=runtime.clock())
        run_service.enroll(session, workflow=workflow, contact=contact,
                           trigger_type="manual", event={}, now=runtime.clock())
    drain(runtime)
    with read_scope(runtime.sessions) as session:
        steps = session.execute(text(
            "SELECT node_type, request IS NULL, response IS NULL FROM run_steps")).all()
    assert len(steps) >= 3  # TRIGGER, UPDATE_CONTACT, END
    assert all(no_request and no_response for _, no_request, no_response in steps), steps
