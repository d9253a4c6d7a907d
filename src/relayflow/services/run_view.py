"""One run as the run detail page shows it: the run with its links (services.run.detail),
its workflow and pinned version, every step placed on the run's time axis, and where the
run is now in its graph (visited, failed, current or parked node)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.engine.status import TERMINAL
from relayflow.services import run as run_service
from relayflow.storage.models import (
    DeliveryAttempt,
    RunStep,
    Workflow,
    WorkflowRun,
    WorkflowVersion,
)
from relayflow.storage.repositories import workflow as workflow_repo

# A step shorter than this share of the axis is still drawn this wide, so it stays visible.
MIN_BAR_PCT = 0.6


def handled_error(step: RunStep) -> bool:
    """An INTEGRATION step whose request failed and that took its `on_error` edge: it is
    COMPLETED (the run went on, as the workflow says) but it is no success."""
    return (step.node_type == "INTEGRATION" and step.branch == "on_error"
            and step.status == "COMPLETED")


def current_attempt(step: RunStep, attempts: Sequence[DeliveryAttempt]
                    ) -> DeliveryAttempt | None:
    """A SEND_MESSAGE step's delivery attempt as it is now: the one the step points at
    (after a transient failure, its latest retry), else its newest."""
    for attempt in attempts:
        if attempt.id == step.delivery_attempt_id:
            return attempt
    return attempts[-1] if attempts else None


def shown_output(step: RunStep, attempt: DeliveryAttempt | None) -> dict[str, Any]:
    """A step's output bag as the run page and the API show it. A SEND_MESSAGE step's bag
    holds the status its attempt had when the step ran (usually SENT); what is shown is
    the attempt's status now (DELIVERED, BOUNCED, ...), with its id and error."""
    output = dict(step.output or {})
    if step.node_type != "SEND_MESSAGE" or attempt is None:
        return output
    output.update(status=attempt.status, delivery_attempt_id=str(attempt.id))
    output.pop("error", None)
    if attempt.error:
        output["error"] = attempt.error
    return output


@dataclass(frozen=True, slots=True, kw_only=True)
class StepView:
    """A step with its place on the run's time axis (ms from the run's creation)."""

    step: RunStep
    offset_ms: int
    span_ms: int
    ongoing: bool  # still running or parked: its bar reaches "now"
    left_pct: float
    width_pct: float
    attempts: list[DeliveryAttempt]
    captured: dict[str, Any]  # INTEGRATION: each `capture` name with the value it got
    child_run_id: uuid.UUID | None  # TRIGGER_WORKFLOW: the run it started
    handled_error: bool  # INTEGRATION: failed, and the run went on by its on_error edge
    attempt: DeliveryAttempt | None  # SEND_MESSAGE: its attempt as it is now
    output: dict[str, Any]  # the bag as shown (shown_output)
    sent_status: str | None  # SEND_MESSAGE: the status the bag holds, when it is not now's
    expression: str | None  # CONDITION: its `when`
    went_on_to: str | None  # a handled error: the node its on_error edge leads to


@dataclass(frozen=True, slots=True, kw_only=True)
class RunView:
    detail: run_service.Detail
    workflow: Workflow
    version: WorkflowVersion
    steps: list[StepView]
    axis_ms: int
    duration_ms: int | None  # started → finished, or → now while in flight
    terminal: bool
    visited: list[str]
    failed_node: str | None
    failed_seq: int | None  # the step that failed, when one did
    current_node: str | None  # while RUNNING and not parked
    waiting_node: str | None  # the WAIT the run is parked in
    waiting_until: datetime | None
    children: list[run_service.Linked]
    retries: list[run_service.Linked]
    handled: list[str]  # nodes whose request failed and whose on_error edge was taken
    current_version: int | None  # the workflow's version now, when newer than the run's

    @property
    def run(self) -> WorkflowRun:
        return self.detail.row.run


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((_utc(end) - _utc(start)).total_seconds() * 1000))


def _node_config(definition: dict[str, Any], node_id: str) -> dict[str, Any]:
    nodes = definition.get("nodes")
    node = nodes.get(node_id) if isinstance(nodes, dict) else None
    return node if isinstance(node, dict) else {}


def _captured(definition: dict[str, Any], step: RunStep) -> dict[str, Any]:
    if step.node_type != "INTEGRATION":
        return {}
    capture = _node_config(definition, step.node_id).get("capture")
    names = list(capture) if isinstance(capture, dict) else []
    output = step.output or {}
    return {name: output.get(name) for name in names}


def _child_run(step: RunStep) -> uuid.UUID | None:
    if step.node_type != "TRIGGER_WORKFLOW":
        return None
    value = (step.output or {}).get("run_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def place_steps(
    run: WorkflowRun, steps: list[RunStep], attempts: dict[int, list[DeliveryAttempt]],
    definition: dict[str, Any], *, now: datetime,
) -> tuple[list[StepView], int]:
    """Each step's bar on one axis from the run's creation to its end (or now while it is
    in flight); an open step (RUNNING, WAITING) reaches the axis end."""
    origin = run.created_at
    terminal = run.status in TERMINAL
    axis_end = (run.finished_at or now) if terminal else now
    for step in steps:  # a clock that stepped back must not push a bar off the axis
        if step.finished_at is not None and _utc(step.finished_at) > _utc(axis_end):
            axis_end = step.finished_at
    axis_ms = _ms(origin, axis_end)
    out: list[StepView] = []
    for step in steps:
        ongoing = step.finished_at is None and not terminal
        end = step.finished_at or axis_end
        offset = _ms(origin, step.started_at)
        span = step.duration_ms if step.duration_ms is not None else _ms(step.started_at, end)
        left = min(100.0, offset * 100 / axis_ms) if axis_ms else 0.0
        width = span * 100 / axis_ms if axis_ms else 0.0
        width = min(max(width, MIN_BAR_PCT), 100.0)
        left = min(left, 100.0 - width)
        tried = attempts.get(step.seq, [])
        attempt = current_attempt(step, tried) if step.node_type == "SEND_MESSAGE" else None
        sent = (step.output or {}).get("status")
        config = _node_config(definition, step.node_id)
        out.append(StepView(
            step=step, offset_ms=offset, span_ms=span, ongoing=ongoing,
            left_pct=round(left, 2), width_pct=round(width, 2),
            attempts=tried, captured=_captured(definition, step),
            child_run_id=_child_run(step), handled_error=handled_error(step),
            attempt=attempt, output=shown_output(step, attempt),
            sent_status=str(sent) if attempt is not None and sent and sent != attempt.status
            else None,
            expression=(str(config.get("when"))
                        if step.node_type == "CONDITION" and "when" in config else None),
            went_on_to=str(config.get("on_error")) if handled_error(step) else None,
        ))
    return out, axis_ms


def _failed(run: WorkflowRun, steps: list[RunStep]) -> tuple[str | None, int | None]:
    """The failing node and its step: the step marked FAILED, else the run's current node
    (a run can fail between steps, e.g. when its version can no longer be read)."""
    if run.status != "FAILED":
        return None, None
    failed = [s for s in steps if s.status == "FAILED"]
    if failed:
        return failed[-1].node_id, failed[-1].seq
    at = [s.seq for s in steps if s.node_id == run.current_node]
    return run.current_node, at[-1] if at else None


def build(
    session: Session, *, workspace_id: uuid.UUID, run_id: str | uuid.UUID, now: datetime
) -> RunView:
    """Everything the run detail page shows; NotFound for an unknown, malformed or other
    workspace's id (services.run.detail scopes it)."""
    detail = run_service.detail(session, workspace_id=workspace_id, run_id=run_id)
    run = detail.row.run
    workflow = workflow_repo.get(session, run.workflow_id)
    version = workflow_repo.get_version(session, run.version_id)
    assert workflow is not None  # foreign keys guarantee both
    assert version is not None
    current_id = workflow.current_version_id
    current = (workflow_repo.get_version(session, current_id)
               if current_id is not None and current_id != version.id else None)
    steps, axis_ms = place_steps(run, detail.steps, detail.attempts, version.definition,
                                 now=now)
    terminal = run.status in TERMINAL
    last = detail.steps[-1] if detail.steps else None
    parked = not terminal and last is not None and last.status == "WAITING"
    in_flight = not terminal and not parked
    failed_node, failed_seq = _failed(run, detail.steps)
    started = run.started_at
    duration = _ms(started, run.finished_at or now) if started is not None else None
    return RunView(
        detail=detail, workflow=workflow, version=version, steps=steps, axis_ms=axis_ms,
        duration_ms=duration, terminal=terminal,
        visited=[s.node_id for s in detail.steps],
        failed_node=failed_node, failed_seq=failed_seq,
        current_node=run.current_node if in_flight else None,
        waiting_node=last.node_id if parked and last is not None else None,
        waiting_until=run.wake_at if parked else None,
        children=[link for link in detail.linked if link.relation == "child"],
        retries=[link for link in detail.linked if link.relation == "retry"],
        handled=[s.step.node_id for s in steps if s.handled_error],
        current_version=(current.number if current is not None
                         and current.number > version.number else None),
    )
