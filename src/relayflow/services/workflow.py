from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from relayflow.engine import graph as graph_module
from relayflow.engine.graph import WorkflowGraph
from relayflow.errors import Conflict, NotFound
from relayflow.services import workspace as workspace_service
from relayflow.storage.models import Workflow, WorkflowVersion
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import secret as secret_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories import workflow_stats

_graphs: dict[uuid.UUID, WorkflowGraph] = {}


def graph_of(version: WorkflowVersion) -> WorkflowGraph:
    """Versions never change, so their parsed graphs are cached for the process lifetime."""
    cached = _graphs.get(version.id)
    if cached is None:
        cached = _graphs[version.id] = WorkflowGraph.from_dict(version.definition)
    return cached


@dataclass(frozen=True, slots=True)
class Saved:
    workflow: Workflow
    version: WorkflowVersion
    created: bool
    new_version: bool


def _hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _validate(session: Session, workspace_id: uuid.UUID, definition: dict[str, Any]) -> None:
    known_workflows = workflow_repo.keys(session, workspace_id) | {definition.get("key")}
    graph_module.load(
        definition,
        known_secrets=secret_repo.names(session, workspace_id),
        known_workflows={k for k in known_workflows if isinstance(k, str)},
    )


def save(
    session: Session, *, workspace_id: uuid.UUID, definition: dict[str, Any], now: datetime
) -> Saved:
    """Create or update from a definition; a changed definition becomes a new version."""
    _validate(session, workspace_id, definition)
    key = definition["key"]
    trigger_type = (definition.get("trigger") or {}).get("type", "manual")
    digest = _hash(definition)
    workflow = workflow_repo.get_by_key(session, workspace_id, key)
    created = workflow is None
    if workflow is None:
        workflow = workflow_repo.add(session, Workflow(
            workspace_id=workspace_id, key=key, name=definition.get("name") or key,
            status="DRAFT", trigger_type=trigger_type, created_at=now, updated_at=now,
        ))
    current = (workflow_repo.get_version(session, workflow.current_version_id)
               if workflow.current_version_id else None)
    if current is not None and current.definition_hash == digest:
        return Saved(workflow, current, created, False)
    version = workflow_repo.add_version(session, WorkflowVersion(
        workspace_id=workspace_id, workflow_id=workflow.id,
        number=workflow_repo.next_version_number(session, workflow.id),
        definition=definition, definition_hash=digest, created_at=now,
    ))
    workflow.current_version_id = version.id
    workflow.name = definition.get("name") or key
    workflow.trigger_type = trigger_type
    workflow.updated_at = now
    if trigger_type == "webhook" and workflow.webhook_token is None:
        workflow.webhook_token = secrets.token_urlsafe(24)
    return Saved(workflow, version, created, True)


def get(session: Session, *, workspace_id: uuid.UUID, key: str) -> Workflow:
    workflow = workflow_repo.get_by_key(session, workspace_id, key)
    if workflow is None:
        raise NotFound(f"no workflow {key!r} in this workspace")
    return workflow


def current_version(session: Session, workflow: Workflow) -> WorkflowVersion:
    version = (workflow_repo.get_version(session, workflow.current_version_id)
               if workflow.current_version_id else None)
    if version is None:
        raise Conflict(f"workflow {workflow.key!r} has no version")
    return version


def activate(
    session: Session, *, workspace_id: uuid.UUID, key: str, actor: str, now: datetime
) -> Workflow:
    workflow = get(session, workspace_id=workspace_id, key=key)
    _validate(session, workspace_id, current_version(session, workflow).definition)
    if workflow.status != "ACTIVE":
        workflow.status = "ACTIVE"
        workflow.updated_at = now
        workflow.activated_at = now
        workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                                action="workflow.activate", target_type="workflow",
                                target_id=key, now=now)
    return workflow


def deactivate(
    session: Session, *, workspace_id: uuid.UUID, key: str, actor: str, now: datetime
) -> tuple[Workflow, int]:
    """Set INACTIVE and cancel every in-flight run; returns how many were canceled."""
    from relayflow.services import run as run_service

    workflow = get(session, workspace_id=workspace_id, key=key)
    workflow.status = "INACTIVE"
    workflow.updated_at = now
    canceled = 0
    for run_id in run_repo.in_flight(session, workspace_id, workflow.id):
        run_service.cancel(session, workspace_id=workspace_id, run_id=run_id,
                           actor=actor, now=now, reason="workflow deactivated", audit=False)
        canceled += 1
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="workflow.deactivate", target_type="workflow",
                            target_id=key, now=now, detail={"canceled_runs": canceled})
    return workflow, canceled


def list_all(session: Session, *, workspace_id: uuid.UUID) -> list[Workflow]:
    return workflow_repo.list_all(session, workspace_id)


def versions(session: Session, workflow: Workflow) -> list[WorkflowVersion]:
    return workflow_repo.list_versions(session, workflow.id)


def trigger_of(version: WorkflowVersion) -> dict[str, Any]:
    """The definition's trigger object (a definition without one is manually triggered)."""
    trigger = version.definition.get("trigger")
    return dict(trigger) if isinstance(trigger, dict) else {"type": "manual"}


def webhook_path(workflow: Workflow) -> str | None:
    if workflow.trigger_type != "webhook" or workflow.webhook_token is None:
        return None
    return f"/hooks/{workflow.webhook_token}"


def list_current(
    session: Session, *, workspace_id: uuid.UUID
) -> list[tuple[Workflow, WorkflowVersion]]:
    """Every workflow with its current version, loaded in two queries."""
    workflows = workflow_repo.list_all(session, workspace_id)
    found = workflow_repo.get_versions(
        session, [w.current_version_id for w in workflows if w.current_version_id]
    )
    out: list[tuple[Workflow, WorkflowVersion]] = []
    for workflow in workflows:
        version = found.get(workflow.current_version_id) if workflow.current_version_id else None
        if version is not None:  # save() always writes a version; skip a half-made row
            out.append((workflow, version))
    return out


@dataclass(frozen=True, slots=True)
class Detail:
    workflow: Workflow
    current: WorkflowVersion
    versions: list[WorkflowVersion]


def detail(session: Session, *, workspace_id: uuid.UUID, key: str) -> Detail:
    workflow = get(session, workspace_id=workspace_id, key=key)
    return Detail(workflow, current_version(session, workflow), versions(session, workflow))


# --- for the workflow pages ------------------------------------------------------------

RECENT = timedelta(hours=24)


def _outcomes(by_status: dict[str, int]) -> dict[str, int]:
    """Per-status counts folded into the /runs status chips (Running also holds PENDING)."""
    from relayflow.services.run import CHIPS

    return {chip: sum(by_status.get(s, 0) for s in statuses) for chip, statuses in CHIPS.items()}


@dataclass(frozen=True, slots=True)
class Overview:
    workflow: Workflow
    version: WorkflowVersion
    recent_runs: dict[str, int]  # chip (RUNNING, COMPLETED, FAILED, CANCELED) -> runs in 24 h


def overview(session: Session, *, workspace_id: uuid.UUID, now: datetime) -> list[Overview]:
    """Every workflow, its current version and its last 24 hours of runs: three queries in
    all, whatever the number of workflows."""
    counts = workflow_stats.status_counts_since(session, workspace_id, since=now - RECENT)
    return [Overview(w, v, _outcomes(counts.get(w.id, {})))
            for w, v in list_current(session, workspace_id=workspace_id)]


def in_flight_count(session: Session, *, workflow: Workflow) -> int:
    """How many runs `deactivate` would cancel right now."""
    return workflow_stats.count_in_flight(session, workflow.workspace_id, workflow.id)


def started_by(session: Session, *, workspace_id: uuid.UUID, key: str) -> list[Workflow]:
    """Workflows whose current version has a TRIGGER_WORKFLOW node that starts `key`."""
    out: list[Workflow] = []
    for workflow, version in list_current(session, workspace_id=workspace_id):
        nodes = version.definition.get("nodes")
        if isinstance(nodes, dict) and any(
            isinstance(node, dict) and node.get("type") == "TRIGGER_WORKFLOW"
            and node.get("workflow") == key for node in nodes.values()
        ):
            out.append(workflow)
    return out


@dataclass(frozen=True, slots=True)
class Signing:
    """A webhook trigger's signing: the secret's name and whether it is set (never its value)."""

    secret_name: str
    secret_set: bool


@dataclass(frozen=True, slots=True)
class Summary:
    detail: Detail
    recent_runs: dict[str, int]
    in_flight: int
    started_by: list[Workflow]
    signing: Signing | None


def summary(session: Session, *, workspace_id: uuid.UUID, key: str, now: datetime) -> Summary:
    """What the workflow page shows beyond the definition: recent runs, in-flight runs, the
    workflows that start this one and, for a signed webhook, whether its secret exists."""
    found = detail(session, workspace_id=workspace_id, key=key)
    workflow = found.workflow
    counts = workflow_stats.status_counts_since(session, workspace_id, since=now - RECENT,
                                                workflow_id=workflow.id)
    secret_name = trigger_of(found.current).get("signing_secret")
    signing = None
    if workflow.trigger_type == "webhook" and secret_name:
        name = str(secret_name)
        signing = Signing(name, name in secret_repo.names(session, workspace_id))
    return Summary(
        detail=found,
        recent_runs=_outcomes(counts.get(workflow.id, {})),
        in_flight=in_flight_count(session, workflow=workflow),
        started_by=started_by(session, workspace_id=workspace_id, key=key),
        signing=signing,
    )
