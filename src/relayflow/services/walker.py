"""One claimed run as it walks its graph: where it is, what it has decided, and the rows
it wants written at its next fenced commit (services/walk.py commits them).

Nodes without outside effects (CONDITION, SPLIT, UPDATE_CONTACT, WAIT, END, STOP_ERROR,
TRIGGER_WORKFLOW) only add to the pending writes. A node with an outside effect
(INTEGRATION, SEND_MESSAGE) stops the walk with the effect "in flight": its intent (a
RUNNING step, and for a message its QUEUED attempt) is among the pending writes, and
services/effects.py performs it once that is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relayflow.engine import stepper
from relayflow.engine.context import StepContext
from relayflow.engine.executors.send_message import ON_FAILURE_DEFAULT
from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.outcome import (
    Advance,
    Fail,
    Finish,
    HttpCall,
    Outcome,
    Perform,
    SendMessage,
    StartResult,
    StartRun,
    WaitUntil,
)
from relayflow.services import delivery as delivery_service
from relayflow.services import failures
from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.services.runtime import Runtime
from relayflow.services.secret import WorkspaceSecrets
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt, FailureGroup, RunStep, WorkflowRun
from relayflow.storage.types import fit, storable
from relayflow.telemetry import tracing

_ATTEMPT_COLUMNS = ("id", "workspace_id", "run_id", "step_seq", "workflow_id", "contact_id",
                    "channel", "provider", "recipient", "subject", "body", "html",
                    "attempt_number")
MAX_STEPS_PER_CLAIM = 200  # a long graph yields the worker rather than hog it
# The provider type a (workspace, channel) sends with, as the batch read it.
ProviderOf = Callable[[uuid.UUID, str], str]

def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


def step_row(
    *, workspace_id: uuid.UUID, run_id: uuid.UUID, seq: int, node_id: str, node_type: str,
    status: str, started_at: datetime, finished_at: datetime | None, output: dict[str, Any],
    branch: str | None = None, error: str | None = None, request: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None, delivery_attempt_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(), "workspace_id": workspace_id, "run_id": run_id, "seq": seq,
        "node_id": node_id, "node_type": node_type, "status": status, "started_at": started_at,
        "finished_at": finished_at,
        "duration_ms": _ms(started_at, finished_at) if finished_at else None,
        "branch": branch, "output": output, "request": request, "response": response,
        "delivery_attempt_id": delivery_attempt_id, "error": error,
    }


@dataclass(slots=True)
class Writes:
    """Everything one run wants written at its next fenced commit."""

    new_steps: list[dict[str, Any]] = field(default_factory=list)
    # Results of effects that already happened: kept even if the run is canceled.
    step_updates: list[dict[str, Any]] = field(default_factory=list)
    new_attempts: list[dict[str, Any]] = field(default_factory=list)
    attempt_updates: list[dict[str, Any]] = field(default_factory=list)
    run_values: dict[str, Any] = field(default_factory=dict)
    contact_set: dict[str, Any] = field(default_factory=dict)
    # The causes of this commit's failures, described (failure_groups) unless they are.
    failure_groups: list[dict[str, Any]] = field(default_factory=list)
    children: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )
    job: str = "keep"  # keep | delete | park | release
    due_at: datetime | None = None

    def storable(self) -> Writes:
        """These writes as every column can hold them: characters no database stores
        replaced, texts cut to their column's length (storage.types)."""
        steps, attempts, runs = RunStep.__table__, DeliveryAttempt.__table__, WorkflowRun.__table__

        def rows(table: Any, values: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [fit(table, storable(row)) for row in values]

        return Writes(
            new_steps=rows(steps, self.new_steps), step_updates=rows(steps, self.step_updates),
            new_attempts=rows(attempts, self.new_attempts),
            attempt_updates=rows(attempts, self.attempt_updates),
            run_values=fit(runs, storable(self.run_values)),
            contact_set=storable(self.contact_set),
            failure_groups=rows(FailureGroup.__table__, self.failure_groups),
            children=[(fit(runs, storable(run)), fit(steps, storable(step)), job)
                      for run, step, job in self.children],
            job=self.job, due_at=self.due_at)


@dataclass(frozen=True, slots=True)
class Observed:
    """A step that ended, for the metrics and the trace."""

    node_id: str
    node_type: str
    status: str
    started: datetime
    ended: datetime
    error: str | None


@dataclass(slots=True)
class InFlight:
    """An effect to perform once its intent and its "performing now" mark are committed."""

    node_id: str
    step_id: uuid.UUID
    started_at: datetime
    effect: HttpCall | SendMessage
    attempt_id: uuid.UUID | None = None
    # For a message: the attempt row's fields (to queue a retry from it), and whether an
    # earlier worker was interrupted while sending it.
    attempt: dict[str, Any] | None = None
    interrupted: bool = False


class RunWalker:
    """One claimed run: its context, where it is, and its pending writes."""

    def __init__(self, *, run: WorkflowRun, token: int, graph: WorkflowGraph,
                 contact: dict[str, Any] | None, steps: list[RunStep],
                 attempts: dict[uuid.UUID, DeliveryAttempt], workflow_key: str,
                 version_number: int, secrets: WorkspaceSecrets, now: datetime,
                 runtime: Runtime, cancel_requested: bool, provider_of: ProviderOf) -> None:
        self.run, self.token, self.graph, self.runtime = run, token, graph, runtime
        self.secrets = secrets
        self.provider_of = provider_of
        self.ctx = StepContext(
            run={"id": str(run.id), "workflow": workflow_key, "version": version_number,
                 "trigger": run.trigger_type},
            event=run.trigger_payload or {},
            contact=contact,
            steps={s.node_id: dict(s.output or {}) for s in steps
                   if s.status == "COMPLETED" and s.seq > 0},
            now=now,
            secrets=secrets,
            unsubscribe_urls=(unsubscribe_service.urls_for(
                runtime, workspace_id=run.workspace_id, contact_id=run.contact_id)
                if any(n.type == "SEND_MESSAGE" for n in graph.nodes.values()) else {}),
        )
        self.seq = steps[-1].seq if steps else 0
        self.writes = Writes()
        self.in_flight: InFlight | None = None
        self.finished = False
        # Its end is committed (its job is gone): the batch's later commits leave it out.
        self.closed = False
        self.dropped = False
        self.cancel_requested = cancel_requested
        # What its INTEGRATION steps captured so far, by name (kept on the run for search).
        self.captured: dict[str, Any] = dict(run.captured or {})
        # The in-flight message whose "sending now" the next commit writes (cancel: see
        # `cancel`).
        self.sending: InFlight | None = None
        self.steps_taken = 0
        self.canceled = False
        # What this run's next accepted commit reports (services/walk.py::_report): the
        # steps and delivery attempts that ended.
        self.observed_steps: list[Observed] = []
        self.observed_attempts: list[tuple[str, dict[str, Any], str, datetime]] = []
        # While tracing is on: this walk's span, and the spans of steps whose effect is
        # under way, by node (telemetry/tracing.py).
        self.trace: Any = None
        self.live_spans: dict[str, Any] = {}
        self.children_started: list[str] = []  # their workflows' keys
        self.node_id: str | None = self._position(steps, attempts, now)

    @property
    def run_id(self) -> uuid.UUID:
        return self.run.id

    # --- where to continue --------------------------------------------------------------

    def _position(self, steps: list[RunStep], attempts: dict[uuid.UUID, DeliveryAttempt],
                  now: datetime) -> str | None:
        if self.cancel_requested:
            return None
        if self.run.status == "PENDING":
            self._set_run(status="RUNNING", started_at=now, current_node=self.graph.start)
            return self.graph.start
        last = steps[-1] if steps else None
        if last is not None and last.status == "WAITING":
            self.writes.step_updates.append({
                "id": last.id, "run_id": self.run.id, "status": "COMPLETED",
                "finished_at": now, "duration_ms": _ms(last.started_at, now),
            })
            self.ctx.steps[last.node_id] = dict(last.output or {})
            nxt = str((last.output or {})["next"])
            self._set_run(current_node=nxt, wake_at=None)
            return nxt
        if last is not None and last.status == "RUNNING":
            self._recover(last, attempts)
            return last.node_id
        return self.run.current_node or self.graph.start

    def _recover(self, step: RunStep, attempts: dict[uuid.UUID, DeliveryAttempt]) -> None:
        """The worker died after committing this step's intent: perform it again.

        An INTEGRATION is re-sent with the same Idempotency-Key (at least once); a message
        reuses its attempt row, whose id keys the provider's de-duplication."""
        if step.node_type == "SEND_MESSAGE" and step.delivery_attempt_id in attempts:
            row = attempts[step.delivery_attempt_id]
            effect: HttpCall | SendMessage = SendMessage(
                channel=row.channel, to=row.recipient, subject=row.subject, body=row.body,
                html=row.html, on_failure=str(self.graph.nodes[step.node_id].config.get(
                    "on_failure", ON_FAILURE_DEFAULT)))
            attempt = {c: getattr(row, c) for c in _ATTEMPT_COLUMNS}
            self.in_flight = InFlight(step.node_id, step.id, step.started_at, effect, row.id,
                                      attempt, interrupted=row.send_started_at is not None)
            return
        outcome = stepper.step(self.graph, step.node_id, self.ctx)
        if isinstance(outcome, Perform) and isinstance(outcome.effect, HttpCall):
            self.in_flight = InFlight(step.node_id, step.id, step.started_at, outcome.effect)
        else:  # the request can no longer be rendered: record the failure on that step
            failure = outcome if isinstance(outcome, Fail) else Fail(
                reason="cannot resume this step", error_class="NotResumable")
            self._close_step(step.id, step.started_at, failure)
            self._follow(step.node_id, failure, self.ctx.now)

    # --- walking --------------------------------------------------------------------------

    def walk(self, start_child: Callable[[RunWalker, StartRun], StartResult]) -> None:
        """Run nodes until an effect is needed, the run parks or ends, or the cap is hit."""
        while not self.finished and self.in_flight is None and self.node_id is not None:
            if self.steps_taken >= MAX_STEPS_PER_CLAIM:
                self.writes.job, self.writes.due_at = "release", self.ctx.now
                return
            self.steps_taken += 1
            node_id = self.node_id
            outcome = stepper.step(self.graph, node_id, self.ctx)
            if isinstance(outcome, Perform) and isinstance(outcome.effect, StartRun):
                result = start_child(self, outcome.effect)
                outcome = stepper.resume(self.graph, node_id, self.ctx, result)
            if isinstance(outcome, Perform):
                self._intend(node_id, outcome)
                return
            self.record(node_id, outcome, self.ctx.now)

    def _intend(self, node_id: str, outcome: Perform) -> None:
        effect = outcome.effect
        assert isinstance(effect, HttpCall | SendMessage)
        now = self.ctx.now
        self.seq += 1
        node_type = self.graph.nodes[node_id].type
        row = step_row(workspace_id=self.run.workspace_id, run_id=self.run.id, seq=self.seq,
                       node_id=node_id, node_type=node_type, status="RUNNING", started_at=now,
                       finished_at=None, output={})
        attempt_id, attempt = None, None
        if isinstance(effect, HttpCall):
            row["request"] = effect.stored
        else:
            attempt_id = new_id()
            row["delivery_attempt_id"] = attempt_id
            attempt = {
                "id": attempt_id, "workspace_id": self.run.workspace_id, "run_id": self.run.id,
                "step_seq": self.seq, "workflow_id": self.run.workflow_id,
                "contact_id": self.run.contact_id, "channel": effect.channel,
                "provider": self.provider_of(self.run.workspace_id, effect.channel),
                "recipient": effect.to, "subject": effect.subject, "body": effect.body,
                "html": effect.html, "status": "QUEUED", "attempt_number": 1,
                "created_at": now,
            }
            self.writes.new_attempts.append(dict(attempt))
        self.writes.new_steps.append(row)
        self._set_run(current_node=node_id)
        if self.trace is not None:
            self.live_spans[node_id] = tracing.start(
                "step", parent=self.trace, at=now,
                attributes={"relayflow.node": node_id, "relayflow.node_type": node_type})
        self.in_flight = InFlight(node_id, row["id"], now, effect, attempt_id, attempt)

    def record(self, node_id: str, outcome: Outcome, now: datetime,
                step_id: uuid.UUID | None = None, started_at: datetime | None = None,
                response: dict[str, Any] | None = None) -> None:
        """Write the step a finished node produced and move the run on."""
        node_type = self.graph.nodes[node_id].type
        started = started_at or now
        if isinstance(outcome, WaitUntil) and outcome.until > now:
            self.seq += 1
            self.writes.new_steps.append(step_row(
                workspace_id=self.run.workspace_id, run_id=self.run.id, seq=self.seq,
                node_id=node_id, node_type=node_type, status="WAITING", started_at=now,
                finished_at=None, output={**outcome.output, "next": outcome.next}))
            self._set_run(current_node=node_id, wake_at=outcome.until)
            self.writes.job, self.writes.due_at = "park", outcome.until
            self.node_id = None
            return
        status = "FAILED" if isinstance(outcome, Fail) else "COMPLETED"
        self.observed_steps.append(Observed(
            node_id, node_type, status, started, now,
            outcome.reason if isinstance(outcome, Fail) else None))
        if step_id is not None:
            self._close_step(step_id, started, outcome, response)
        else:
            self.seq += 1
            self.writes.new_steps.append(step_row(
                workspace_id=self.run.workspace_id, run_id=self.run.id, seq=self.seq,
                node_id=node_id, node_type=node_type, status=status, started_at=started,
                finished_at=now, output=dict(getattr(outcome, "output", {}) or {}),
                branch=getattr(outcome, "branch", None),
                error=outcome.reason if isinstance(outcome, Fail) else None))
        self._follow(node_id, outcome, now)

    def _close_step(self, step_id: uuid.UUID, started: datetime, outcome: Outcome,
                    response: dict[str, Any] | None = None) -> None:
        now = self.ctx.now
        self.writes.step_updates.append({
            "response": response,
            "id": step_id, "run_id": self.run.id,
            "status": "FAILED" if isinstance(outcome, Fail) else "COMPLETED",
            "finished_at": now, "duration_ms": _ms(started, now),
            "output": dict(getattr(outcome, "output", {}) or {}),
            "branch": getattr(outcome, "branch", None),
            "error": outcome.reason if isinstance(outcome, Fail) else None,
        })

    def _follow(self, node_id: str, outcome: Outcome, now: datetime) -> None:
        if isinstance(outcome, Advance | WaitUntil):
            self.ctx.steps[node_id] = dict(outcome.output)
            self._capture(node_id, outcome)
            if isinstance(outcome, Advance) and outcome.contact_set:
                self.writes.contact_set.update(outcome.contact_set)
                if self.ctx.contact is not None:
                    self.ctx.contact.update(outcome.contact_set)
            self.node_id = outcome.next
            self._set_run(current_node=outcome.next)
        elif isinstance(outcome, Finish):
            self._end("COMPLETED", now, None)
        elif isinstance(outcome, Fail):
            named = failures.of_run(
                workspace_id=self.run.workspace_id, workflow_id=self.run.workflow_id,
                workflow_key=self.ctx.run["workflow"], node_id=node_id,
                node_type=self.graph.nodes[node_id].type, error_class=outcome.error_class,
                error=outcome.reason, now=now)
            self.writes.failure_groups.append(named.group)
            self._set_run(fingerprint=named.fingerprint)
            self._end("FAILED", now, outcome.reason)

    def _capture(self, node_id: str, outcome: Advance | WaitUntil) -> None:
        """An INTEGRATION's captured fields, answered, join the run's (the newest value of
        a name wins)."""
        node = self.graph.nodes[node_id]
        names = node.config.get("capture") if node.type == "INTEGRATION" else None
        if names and isinstance(outcome, Advance) and outcome.branch == "next":
            self.captured.update({name: outcome.output.get(name) for name in names})
            self._set_run(captured=dict(self.captured))

    def _end(self, status: str, now: datetime, error: str | None) -> None:
        self._set_run(status=status, finished_at=now, error=error, wake_at=None)
        self.writes.job = "delete"
        self.finished = True
        self.node_id = None

    def _set_run(self, **values: Any) -> None:
        self.writes.run_values.update(values)

    def attempt_failed(self, node_id: str, attempt: dict[str, Any],
                       values: dict[str, Any]) -> None:
        """Write a FAILED attempt's final `values` (status, error, the provider's answer),
        with its cause's fingerprint."""
        named = failures.of_attempt(
            workspace_id=self.run.workspace_id, workflow_id=self.run.workflow_id,
            workflow_key=self.ctx.run["workflow"], node_id=node_id,
            channel=str(attempt["channel"]), provider=str(attempt["provider"]),
            code=failures.provider_code(values), error=str(values.get("error") or ""),
            now=self.ctx.now)
        self.writes.failure_groups.append(named.group)
        self.writes.attempt_updates.append(
            {"id": attempt["id"], **values, "fingerprint": named.fingerprint})
        self.attempt_ended(node_id, attempt, "FAILED")

    def attempt_ended(self, node_id: str, attempt: dict[str, Any], status: str) -> None:
        self.observed_attempts.append((node_id, attempt, status, self.ctx.now))

    # --- what the effect phase (services/effects.py) asks of the run --------------------------

    def list_headers(self, channel: str) -> dict[str, str]:
        """RFC 8058 one-click unsubscribe headers for email to a known contact."""
        return unsubscribe_service.list_headers(self.ctx.unsubscribe_urls, channel)

    def queue_retry(self, flight: InFlight, attempt: dict[str, Any], due: datetime,
                     now: datetime) -> None:
        """A transient failure: a new attempt row, and the run parks until it is due."""
        retry_id = new_id()
        self.writes.new_attempts.append(
            delivery_service.retry_row(previous=attempt, new_id=retry_id, now=now))
        self.writes.step_updates.append({"id": flight.step_id, "run_id": self.run.id,
                                         "delivery_attempt_id": retry_id})
        self._set_run(current_node=flight.node_id, wake_at=due)
        self.writes.job, self.writes.due_at = "park", due
        self.node_id = None

    def cancel(self, now: datetime, named: tuple[str, str] | None = None) -> None:
        """Cancel at this boundary: keep results of effects that happened, drop the rest.
        `named` is (canceled_by, cancel_reason) when nobody asked for the cancel (the
        workflow was deactivated); a cancel someone asked for named itself on the run
        when it was asked (services.run.cancel), and that is left as it is."""
        sending = self.sending
        if sending is not None and sending.attempt_id is not None and sending.attempt:
            self.attempt_failed(sending.node_id, sending.attempt, {
                "status": "FAILED", "error": "not sent: the run was canceled"})
        self.writes = Writes(step_updates=self.writes.step_updates,
                             attempt_updates=self.writes.attempt_updates,
                             failure_groups=self.writes.failure_groups,
                             run_values={"status": "CANCELED", "finished_at": now,
                                         "wake_at": None, "error": None,
                                         **({"canceled_by": named[0],
                                             "cancel_reason": named[1]} if named else {})},
                             job="delete")
        self.in_flight = None
        self.finished = True
        self.node_id = None
        self.canceled = True
        self.children_started = []  # their rows were dropped with the rest


__all__ = ["MAX_STEPS_PER_CLAIM", "InFlight", "RunWalker", "Writes", "step_row"]
