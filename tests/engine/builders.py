"""Hand-built contexts and graphs for the pure engine tests (no database, no clock)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relayflow.engine.context import StepContext
from relayflow.engine.graph import WorkflowGraph
from relayflow.errors import Problem

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)

CONTACT: dict[str, Any] = {
    "id": "c-1",
    "email": "ada@example.com",
    "phone": "+447700900123",
    "external_id": "acct-42",
    "first_name": "Ada",
    "plan": "pro",
}

DESIGN_EXAMPLE_YAML = """\
key: onboarding
name: Onboarding drip
trigger: {type: webhook, contact: {email: "{{ event.email }}"}}
start: check_plan
nodes:
  check_plan: {type: CONDITION, when: "contact.plan == 'pro'", then: lookup, else: welcome}
  lookup:
    type: INTEGRATION
    request:
      method: GET
      url: "https://crm.example.com/accounts/{{ contact.external_id }}"
      headers: {Authorization: "Bearer {{ secrets.CRM_TOKEN }}"}
    capture: {tier: "body.account.tier"}     # written to this step's output bag
    next: welcome
  welcome:
    type: SEND_MESSAGE
    channel: email                           # email | sms
    subject: "Welcome, {{ contact.first_name | default('there') }}"
    body: "Your tier: {{ steps.lookup.tier | default('standard') }}"
    next: wait_2d
  wait_2d: {type: WAIT, duration: 2d, next: done}
  done: {type: END}
"""


def make_ctx(
    *,
    contact: dict[str, Any] | None = CONTACT,
    event: Mapping[str, Any] | None = None,
    steps: dict[str, dict[str, Any]] | None = None,
    secrets: Mapping[str, str] | None = None,
    run_id: str = "run-1",
    now: datetime = NOW,
) -> StepContext:
    return StepContext(
        run={"id": run_id, "workflow": "t"},
        event=dict(event or {}),
        contact=copy.deepcopy(contact),
        steps=copy.deepcopy(steps or {}),
        now=now,
        secrets=dict(secrets or {}),
    )


def graph_of(nodes: Mapping[str, Mapping[str, Any]], *, start: str | None = None) -> WorkflowGraph:
    """A graph built without validation, so a test can step through any single node."""
    return WorkflowGraph.from_dict(
        {"key": "t", "start": start or next(iter(nodes)), "nodes": dict(nodes)}
    )


def minimal_definition() -> dict[str, Any]:
    """A small valid definition that tests copy and break."""
    return {
        "key": "drip",
        "name": "Drip",
        "trigger": {"type": "manual"},
        "start": "hello",
        "nodes": {
            "hello": {"type": "SEND_MESSAGE", "channel": "email", "body": "Hi", "next": "done"},
            "done": {"type": "END"},
        },
    }


def problems_for(problems: list[Problem], node: str | None, *fragments: str) -> list[Problem]:
    return [p for p in problems if p.node == node and all(f in p.message for f in fragments)]


def assert_problem(problems: list[Problem], node: str | None, *fragments: str) -> None:
    found = problems_for(problems, node, *fragments)
    assert found, f"no problem on {node!r} mentioning {fragments!r}; got {problems!r}"
