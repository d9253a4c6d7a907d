from __future__ import annotations

import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from relayflow.engine import validation
from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.status import CHIPS
from relayflow.errors import Conflict, NotFound
from relayflow.services import canceler
from relayflow.services import workspace as workspace_service
from relayflow.services.canceler import MAX_CANCELED_BY
from relayflow.storage.models import Workflow, WorkflowVersion
from relayflow.storage.repositories import run_cancel as run_cancel_repo
from relayflow.storage.repositories import secret as secret_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories import workflow_stats
from relayflow.telemetry import metrics

log = logging.getLogger(__name__)
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
    # Not problems (the definition is saved), but what its author should know: e.g. that
    # the workflow can start itself through TRIGGER_WORKFLOW nodes.
    warnings: tuple[str, ...] = ()


def _hash(definition: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def _validate(session: Session, workspace_id: uuid.UUID, definition: dict[str, Any]) -> None:
    known_workflows = workflow_repo.keys(session, workspace_id) | {definition.get("key")}
    validation.load(
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
        return Saved(workflow, current, created, False, _warnings(session, workflow, current))
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
    return Saved(workflow, version, created, True, _warnings(session, workflow, version))


def _warnings(session: Session, workflow: Workflow, version: WorkflowVersion) -> tuple[str, ...]:
    """A workflow that can start itself, directly or through others' TRIGGER_WORKFLOW nodes
    (as the workspace's current versions stand), is allowed, since bounded recursion has
    its uses, but said: each hop is one level deeper, and the chain stops with a failed step
    at RELAYFLOW_MAX_TRIGGER_DEPTH."""
    targets = {w.key: validation.trigger_targets(v.definition)
               for w, v in list_current(session, workspace_id=workflow.workspace_id)}
    targets[workflow.key] = validation.trigger_targets(version.definition)
    chain = validation.trigger_cycle(workflow.key, targets)
    if chain is None:
        return ()
    return (f"workflow {workflow.key!r} can start itself: {' → '.join(chain)} "
            "(TRIGGER_WORKFLOW). Each run it starts is one hop deeper; at "
            "RELAYFLOW_MAX_TRIGGER_DEPTH hops (10 by default) the next TRIGGER_WORKFLOW step "
            "fails, and one run starts at most RELAYFLOW_MAX_CHILD_RUNS child runs "
            "(100 by default).",)


def warnings(session: Session, *, workflow: Workflow) -> tuple[str, ...]:
    """What `save` warns about, for the workflow's current version as things stand now."""
    return _warnings(session, workflow, current_version(session, workflow))


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
    session: Session, *, workspace_id: uuid.UUID, key: str, actor: str, now: datetime,
    batch_size: int = 500,
) -> tuple[Workflow, int]:
    """Set INACTIVE and mark every in-flight run to be canceled; cancel the first batch
    now and leave the rest to the workers (`sweep`), so that the request stays short
    however many runs there are. Returns the workflow and how many runs were canceled now;
    `workflow.cancel_total` is how many there are in all.

    What is canceled is the runs created up to now (`cancel_before`): a run started after
    the workflow is activated again, while the sweep goes on, is left alone."""
    workflow = get(session, workspace_id=workspace_id, key=key)
    workflow.status = "INACTIVE"
    workflow.updated_at = now
    workflow.cancel_before = now
    workflow.deactivated_by = actor[:MAX_CANCELED_BY]
    workflow.cancel_total = run_cancel_repo.count_open(session, workspace_id, workflow.id, now)
    canceled = _cancel_batch(session, workflow, now=now, limit=batch_size)
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="workflow.deactivate", target_type="workflow",
                            target_id=key, now=now,
                            detail={"canceled_runs": workflow.cancel_total})
    return workflow, canceled


def _cancel_batch(session: Session, workflow: Workflow, *, now: datetime, limit: int) -> int:
    """Cancel one batch (see run_cancel.Batch); the count includes the runs flagged for
    their worker, as an operator cancel counts them."""
    before = workflow.cancel_before
    if before is None:
        return 0
    canceled_by, reason = canceler.deactivation(workflow.key, workflow.deactivated_by)
    batch = run_cancel_repo.cancel_batch(session, workspace_id=workflow.workspace_id,
                                         workflow_id=workflow.id, before=before, now=now,
                                         limit=limit, canceled_by=canceled_by, reason=reason)
    if batch.selected < limit and batch.skipped == 0:  # this batch took the last of them
        workflow.cancel_before = None
    if batch.canceled:  # canceled here; the flagged ones end as their workers walk them
        metrics.after_commit(session, partial(
            metrics.run_finished, workflow.key, "CANCELED", None, batch.canceled))
    return batch.canceled + batch.flagged


def sweep(session: Session, *, now: datetime, limit: int) -> int:
    """Cancel one batch of a deactivated workflow's runs (the worker's share of
    `deactivate`); returns how many runs it canceled, 0 when there was nothing to do."""
    workflow = workflow_repo.next_to_sweep(session)
    if workflow is None:
        return 0
    canceled = _cancel_batch(session, workflow, now=now, limit=limit)
    if workflow.cancel_before is None:
        log.info("canceled the runs of deactivated workflow %s", workflow.key,
                 extra={"workflow_id": str(workflow.id)})
    return canceled


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A background cancel under way: `canceled` of `to_cancel` runs so far."""

    to_cancel: int
    canceled: int


def cancellation(session: Session, *, workflow: Workflow) -> Cancellation | None:
    """Progress of the cancel `deactivate` started; None when none is under way."""
    if workflow.cancel_before is None:
        return None
    left = run_cancel_repo.count_open(session, workflow.workspace_id, workflow.id,
                                      workflow.cancel_before)
    # Runs started just before the deactivation but written after it are swept too.
    total = max(workflow.cancel_total, left)
    return Cancellation(to_cancel=total, canceled=total - left)


def list_all(session: Session, *, workspace_id: uuid.UUID) -> list[Workflow]:
    return workflow_repo.list_all(session, workspace_id)


def versions(session: Session, workflow: Workflow) -> list[WorkflowVersion]:
    return workflow_repo.list_versions(session, workflow.id)


def trigger_of(version: WorkflowVersion) -> dict[str, Any]:
    """The definition's trigger object (a definition without one is manually triggered)."""
    return trigger_of_definition(version.definition)


def trigger_of_definition(definition: dict[str, Any]) -> dict[str, Any]:
    trigger = definition.get("trigger")
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
    canceling: Cancellation | None = None
    warnings: tuple[str, ...] = ()


def detail(session: Session, *, workspace_id: uuid.UUID, key: str) -> Detail:
    workflow = get(session, workspace_id=workspace_id, key=key)
    current = current_version(session, workflow)
    return Detail(workflow, current, versions(session, workflow),
                  canceling=cancellation(session, workflow=workflow),
                  warnings=_warnings(session, workflow, current))


# --- for the workflow pages ------------------------------------------------------------

RECENT = timedelta(hours=24)


def _outcomes(by_status: dict[str, int]) -> dict[str, int]:
    """Per-status counts folded into the /runs status chips (Running also holds PENDING)."""
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
