"""Advance claimed runs through their graphs: the worker's hot path.

A batch of runs is claimed under a lease, walked in memory, and written back in one
fenced transaction. Nodes without outside effects (CONDITION, SPLIT, UPDATE_CONTACT,
WAIT, END, STOP_ERROR, TRIGGER_WORKFLOW) change only the database, so a whole stretch of
them commits atomically: a crash before the commit leaves nothing behind to repeat.
A node with an outside effect (INTEGRATION, SEND_MESSAGE) first commits its intent
(a RUNNING step, and for a message its QUEUED attempt), then performs the effect
outside any transaction, then commits the result. Every commit checks the lease token
first (fencing): a worker whose lease expired writes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from relayflow.delivery.guarded_http import Guard
from relayflow.engine import stepper
from relayflow.engine.context import StepContext
from relayflow.engine.executors.send_message import ON_FAILURE_DEFAULT
from relayflow.engine.graph import WorkflowGraph
from relayflow.engine.outcome import (
    Advance,
    EffectResult,
    Fail,
    Finish,
    HttpCall,
    HttpResult,
    Outcome,
    Perform,
    SendMessage,
    SendResult,
    StartResult,
    StartRun,
    WaitUntil,
)
from relayflow.faults import crash_point, refuse_write
from relayflow.services import delivery as delivery_service
from relayflow.services import frequency as frequency_service
from relayflow.services import http as http_service
from relayflow.services import network as network_service
from relayflow.services import run as run_service
from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.services.secret import WorkspaceSecrets
from relayflow.storage.db import is_conflict, is_unavailable, session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt, RunStep, WorkflowRun
from relayflow.storage.notify import notify
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories.job import Lease
from relayflow.storage.types import fit, storable

log = logging.getLogger(__name__)

_ATTEMPT_COLUMNS = ("id", "workspace_id", "run_id", "step_seq", "workflow_id", "contact_id",
                    "channel", "provider", "recipient", "subject", "body", "html",
                    "attempt_number")
MAX_STEPS_PER_CLAIM = 200  # a long graph yields the worker rather than hog it
EFFECT_TYPES = ("INTEGRATION", "SEND_MESSAGE")


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
            children=[(fit(runs, storable(run)), fit(steps, storable(step)), job)
                      for run, step, job in self.children],
            job=self.job, due_at=self.due_at)


@dataclass(slots=True)
class InFlight:
    """An effect whose intent is committed and which must now be performed."""

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
                 runtime: Runtime, cancel_requested: bool) -> None:
        self.run, self.token, self.graph, self.runtime = run, token, graph, runtime
        self.secrets = secrets
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
        self.dropped = False
        self.cancel_requested = cancel_requested
        self.steps_taken = 0
        self.canceled = False
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
                "id": last.id, "status": "COMPLETED", "finished_at": now,
                "duration_ms": _ms(last.started_at, now),
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
            reason = outcome.reason if isinstance(outcome, Fail) else "cannot resume this step"
            failure = Fail(reason=reason)
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
            self._record(node_id, outcome, self.ctx.now)

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
                "provider": delivery_service.provider_name(
                    self.runtime, workspace_id=self.run.workspace_id, channel=effect.channel),
                "recipient": effect.to, "subject": effect.subject, "body": effect.body,
                "html": effect.html, "status": "QUEUED", "attempt_number": 1,
                "created_at": now,
            }
            self.writes.new_attempts.append(dict(attempt))
        self.writes.new_steps.append(row)
        self._set_run(current_node=node_id)
        self.in_flight = InFlight(node_id, row["id"], now, effect, attempt_id, attempt)

    def _record(self, node_id: str, outcome: Outcome, now: datetime,
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
        if step_id is not None:
            self._close_step(step_id, started, outcome, response)
        else:
            self.seq += 1
            status = "FAILED" if isinstance(outcome, Fail) else "COMPLETED"
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
            "id": step_id, "status": "FAILED" if isinstance(outcome, Fail) else "COMPLETED",
            "finished_at": now, "duration_ms": _ms(started, now),
            "output": dict(getattr(outcome, "output", {}) or {}),
            "branch": getattr(outcome, "branch", None),
            "error": outcome.reason if isinstance(outcome, Fail) else None,
        })

    def _follow(self, node_id: str, outcome: Outcome, now: datetime) -> None:
        if isinstance(outcome, Advance | WaitUntil):
            self.ctx.steps[node_id] = dict(outcome.output)
            if isinstance(outcome, Advance) and outcome.contact_set:
                self.writes.contact_set.update(outcome.contact_set)
                if self.ctx.contact is not None:
                    self.ctx.contact.update(outcome.contact_set)
            self.node_id = outcome.next
            self._set_run(current_node=outcome.next)
        elif isinstance(outcome, Finish):
            self._end("COMPLETED", now, None)
        elif isinstance(outcome, Fail):
            self._end("FAILED", now, outcome.reason)

    def _end(self, status: str, now: datetime, error: str | None) -> None:
        self._set_run(status=status, finished_at=now, error=error, wake_at=None)
        self.writes.job = "delete"
        self.finished = True
        self.node_id = None

    def _set_run(self, **values: Any) -> None:
        self.writes.run_values.update(values)

    # --- effects --------------------------------------------------------------------------

    def perform(self) -> None:
        """Perform the in-flight effect (no transaction open) and record its result."""
        flight = self.in_flight
        assert flight is not None
        self.in_flight = None
        response = None
        if isinstance(flight.effect, HttpCall):
            # Commit "calling now" first, fenced: a cancel committed since the intent (while
            # other runs of the batch were calling) or a lost lease stops the call here.
            commit(self.runtime, [self])
            if self.dropped or self.finished:
                return
            allow = network_service.allow_for(self.runtime, workspace_id=self.run.workspace_id)
            result: EffectResult = http_service.perform(
                flight.effect, idempotency_key=f"relayflow-{self.run.id}-{flight.step_id}",
                guard=Guard(allow=allow))
            assert isinstance(result, HttpResult)
            response = stepper.redact(
                {"status": result.status, "headers": result.headers, "body": result.body,
                 "error": result.error, "attempts": result.attempts,
                 "elapsed_ms": result.elapsed_ms},
                self.secrets.loaded())
        else:
            sent = self._send(flight)
            if sent is None:  # parked for a retry, canceled, or the lease was lost
                return
            result = sent
        self.ctx.now = self.runtime.clock()
        outcome = stepper.resume(self.graph, flight.node_id, self.ctx, result)
        if isinstance(outcome, Fail):  # error text can echo a secret too
            outcome = Fail(reason=str(stepper.redact(outcome.reason, self.secrets.loaded())),
                           output=outcome.output)
        self._record(flight.node_id, outcome, self.ctx.now, step_id=flight.step_id,
                     started_at=flight.started_at, response=response)  # type: ignore[arg-type]

    def _send(self, flight: InFlight) -> SendResult | None:
        """Send a message attempt; None when the run parks for a retry or must stop."""
        effect, attempt = flight.effect, flight.attempt
        assert isinstance(effect, SendMessage)
        assert flight.attempt_id is not None
        assert attempt is not None
        attempt_id = flight.attempt_id
        context = delivery_service.read_context(
            self.runtime, workspace_id=self.run.workspace_id, contact_id=self.run.contact_id,
            channel=effect.channel)
        if context.suppressed_by:  # checked now, not when the run started
            self.writes.attempt_updates.append({
                "id": attempt_id, "status": "SUPPRESSED", "suppressed_by": context.suppressed_by,
                "error": f"not sent: the contact's {effect.channel} is {context.suppressed_by}"})
            return SendResult(attempt_id=str(attempt_id), status="SUPPRESSED",
                              error=context.suppressed_by)
        # A message that cannot be sent as rendered fails for good here, before "sending
        # now" is committed (so never "outcome unknown") and before it takes a capped place.
        invalid = delivery_service.refusal(
            channel=effect.channel, to=effect.to, subject=effect.subject,
            headers=self._list_headers(effect.channel), context=context)
        if invalid is not None:
            self.writes.attempt_updates.append({"id": attempt_id, "status": "FAILED",
                                                "error": invalid})
            return SendResult(attempt_id=str(attempt_id), status="FAILED", error=invalid)
        refused = None if flight.interrupted else frequency_service.reserve(
            self.runtime, workspace_id=self.run.workspace_id, contact_id=self.run.contact_id,
            channel=effect.channel, key=flight.step_id)
        if refused is not None:
            self.writes.attempt_updates.append({
                "id": attempt_id, "status": "SUPPRESSED",
                "suppressed_by": frequency_service.SUPPRESSED_BY, "error": refused.error})
            return SendResult(attempt_id=str(attempt_id), status="SUPPRESSED",
                              error=frequency_service.SUPPRESSED_BY)
        unknown = flight.interrupted and delivery_service.interrupted_outcome(context.provider)
        if unknown:
            self.writes.attempt_updates.append({"id": attempt_id, "status": "FAILED",
                                                "error": unknown})
            return SendResult(attempt_id=str(attempt_id), status="FAILED", error=unknown)
        # Commit "sending now" first, fenced: a lost lease or a cancel stops us here.
        self.writes.attempt_updates.append({"id": attempt_id,
                                            "send_started_at": self.runtime.clock()})
        self._sending = flight
        commit(self.runtime, [self])
        self._sending = None
        if self.dropped or self.finished:
            return None
        outcome = delivery_service.send(
            attempt_id=attempt_id, attempt_number=int(attempt["attempt_number"]),
            channel=effect.channel, to=effect.to, subject=effect.subject, body=effect.body,
            html=effect.html, headers=self._list_headers(effect.channel), context=context,
            secrets=self.secrets,
            max_attempts=self.runtime.delivery_max_attempts,
            retry_base=timedelta(seconds=self.runtime.delivery_retry_base_seconds))
        now = self.runtime.clock()
        secrets = self.secrets.loaded()
        if isinstance(outcome, delivery_service.Sent):
            self.writes.attempt_updates.append({
                "id": attempt_id, "status": "SENT", "sent_at": now,
                "provider_message_id": outcome.provider_message_id,
                "provider_response": stepper.redact(outcome.response, secrets), "error": None})
            return SendResult(attempt_id=str(attempt_id), status="SENT")
        error = str(stepper.redact(outcome.error, secrets))
        self.writes.attempt_updates.append({
            "id": attempt_id, "status": "FAILED", "error": error,
            "provider_response": stepper.redact(outcome.response, secrets)})
        if outcome.retry_after is None:
            return SendResult(attempt_id=str(attempt_id), status="FAILED", error=error)
        self._queue_retry(flight, attempt, now + outcome.retry_after, now)
        return None

    def _list_headers(self, channel: str) -> dict[str, str]:
        """RFC 8058 one-click unsubscribe headers for email to a known contact."""
        link = self.ctx.unsubscribe_urls.get(channel)
        if channel != "email" or not link:
            return {}
        return {"List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    def _queue_retry(self, flight: InFlight, attempt: dict[str, Any], due: datetime,
                     now: datetime) -> None:
        """A transient failure: a new attempt row, and the run parks until it is due."""
        retry_id = new_id()
        self.writes.new_attempts.append(
            delivery_service.retry_row(previous=attempt, new_id=retry_id, now=now))
        self.writes.step_updates.append({"id": flight.step_id, "delivery_attempt_id": retry_id})
        self._set_run(current_node=flight.node_id, wake_at=due)
        self.writes.job, self.writes.due_at = "park", due
        self.node_id = None

    def cancel(self, now: datetime) -> None:
        """Cancel at this boundary: keep results of effects that happened, drop the rest."""
        sending = getattr(self, "_sending", None)
        if sending is not None and sending.attempt_id is not None:
            self.writes.attempt_updates.append({
                "id": sending.attempt_id, "status": "FAILED",
                "error": "not sent: the run was canceled"})
        self.writes = Writes(step_updates=self.writes.step_updates,
                             attempt_updates=self.writes.attempt_updates,
                             run_values={"status": "CANCELED", "finished_at": now,
                                         "wake_at": None, "error": None},
                             job="delete")
        self.in_flight = None
        self.finished = True
        self.node_id = None
        self.canceled = True


# --- batches ------------------------------------------------------------------------------


def claim(runtime: Runtime, *, worker: str, limit: int, lease_seconds: float) -> list[RunWalker]:
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        # Due by this clock; the lease is timed by the database's (see job_repo.claim).
        leases = job_repo.claim(session, worker=worker, now=now, lease_seconds=lease_seconds,
                                limit=limit)
        if not leases:
            return []
        return _load(session, runtime, leases, now)


def _load(session: Session, runtime: Runtime, leases: Sequence[Lease],
          now: datetime) -> list[RunWalker]:
    tokens = {lease.run_id: lease.token for lease in leases}
    runs = run_repo.get_many(session, list(tokens))
    # A PENDING run has only its trigger step, so the hot path skips loading steps.
    resumed = [r.id for r in runs if r.status != "PENDING"]
    steps = run_repo.steps_of(session, resumed) if resumed else {}
    contacts = contact_repo.get_many(session, [r.contact_id for r in runs if r.contact_id])
    attempt_ids = [s.delivery_attempt_id for ss in steps.values() for s in ss
                   if s.status == "RUNNING" and s.delivery_attempt_id]
    attempts = delivery_repo.get_many(session, attempt_ids)
    cancels = {lease.run_id: lease.cancel_requested for lease in leases}
    secrets_by_ws: dict[uuid.UUID, WorkspaceSecrets] = {}
    walkers = []
    for run in runs:
        version = workflow_repo.get_version(session, run.version_id)
        workflow = workflow_repo.get(session, run.workflow_id)
        assert version is not None
        assert workflow is not None
        if run.status in run_service.TERMINAL:  # a terminal run never changes again
            job_repo.remove(session, [run.id])
            continue
        contact = contacts.get(run.contact_id) if run.contact_id else None
        secrets = secrets_by_ws.setdefault(
            run.workspace_id, WorkspaceSecrets(runtime.sessions, run.workspace_id, runtime.cipher))
        walkers.append(RunWalker(
            run=run, token=tokens[run.id], graph=workflow_service.graph_of(version),
            contact=contact_repo.as_variables(contact) if contact else None,
            steps=steps.get(run.id, []), attempts=attempts, workflow_key=workflow.key,
            version_number=version.number, secrets=secrets, now=now, runtime=runtime,
            cancel_requested=cancels[run.id] or _deactivated(run, workflow.cancel_before)))
    for walker in walkers:
        if walker.cancel_requested:
            walker.cancel(now)
    return walkers


def _over_caps(runtime: Runtime, session: Session, walker: RunWalker) -> str | None:
    """Why this run may start no further child run (its depth or its child count is at
    the cap), else None. Children are counted over the run's whole life: those committed
    (by any earlier claim) and those of this walk not yet written."""
    depth = walker.run.trigger_depth
    if depth >= runtime.max_trigger_depth:
        return (f"not started: this run is {depth} upstream triggers deep, and runs may "
                f"chain at most {runtime.max_trigger_depth} deep "
                "(RELAYFLOW_MAX_TRIGGER_DEPTH); does a workflow trigger itself?")
    started = (run_repo.count_children(session, walker.run.workspace_id, walker.run.id)
               + len(walker.writes.children))
    if started >= runtime.max_child_runs:
        return (f"not started: this run already started {started} child runs, the most one "
                f"run may start (RELAYFLOW_MAX_CHILD_RUNS = {runtime.max_child_runs})")
    return None


def _deactivated(run: WorkflowRun, cancel_before: datetime | None) -> bool:
    """The run's workflow was deactivated after the run was created: it is canceled here,
    at this step boundary, as an operator cancel would be, whether or not the background
    sweep (services/workflow.sweep) has reached it yet."""
    return cancel_before is not None and run.created_at <= cancel_before


def make_child_starter(runtime: Runtime) -> Callable[[RunWalker, StartRun], StartResult]:
    def start_child(walker: RunWalker, effect: StartRun) -> StartResult:
        with session_scope(runtime.sessions) as session:
            refused = _over_caps(runtime, session, walker)
            if refused is not None:
                return StartResult(run_id=None, error=refused)
            workflow = workflow_repo.get_by_key(session, walker.run.workspace_id, effect.workflow)
            if workflow is None or workflow.current_version_id is None:
                return StartResult(run_id=None, error=f"no workflow {effect.workflow!r}")
            if workflow.status != "ACTIVE":
                return StartResult(run_id=None,
                                   error=f"workflow {effect.workflow!r} is {workflow.status}")
            # Created "now", not at the claim's time: a background cancel of this workflow
            # spares runs created after it was reactivated (see workflow.cancel_before).
            rows = run_service.new_run_rows(
                workspace_id=walker.run.workspace_id, workflow_id=workflow.id,
                version_id=workflow.current_version_id, contact_id=walker.run.contact_id,
                trigger_type="upstream", event=dict(walker.ctx.event),
                now=max(walker.ctx.now, runtime.clock()), parent_run_id=walker.run.id)
        rows[0]["trigger_depth"] = walker.run.trigger_depth + 1
        walker.writes.children.append(rows)
        return StartResult(run_id=str(rows[0]["id"]))

    return start_child


def commit(runtime: Runtime, walkers: Sequence[RunWalker]) -> None:
    """Write every walker's pending changes in one transaction, fenced by lease token."""
    live = [w for w in walkers if not w.dropped]
    if not live:
        return
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        states = job_repo.lock(session, [w.run_id for w in live])
        marks = workflow_repo.cancel_marks(session, {w.run.workflow_id for w in live})
        accepted = []
        for walker in live:
            state = states.get(walker.run_id)
            if state is None or state.token != walker.token:
                log.warning("lease lost; discarding this worker's progress",
                            extra={"run_id": str(walker.run_id)})
                walker.dropped = True
                continue
            deactivated = _deactivated(walker.run, marks.get(walker.run.workflow_id))
            if (state.cancel_requested or deactivated) and not walker.canceled:
                walker.cancel(now)
            accepted.append(walker)
        _apply(session, accepted, now)
    for walker in accepted:
        walker.writes = Writes()


def _apply(session: Session, walkers: Sequence[RunWalker], now: datetime) -> None:
    new_steps, step_updates, new_attempts, attempt_updates = [], [], [], []
    run_updates, deletes, parks, releases = [], [], [], []
    children_runs, children_steps, children_jobs = [], [], []
    contact_sets: dict[uuid.UUID, dict[str, Any]] = {}
    canceled = []
    for walker in walkers:
        # What a run made as it walked (templates, answers, errors) may hold characters no
        # column can store; written as they are, they would fail the whole batch's write.
        w = walker.writes.storable()
        refuse_write(step["node_id"] for step in w.new_steps)
        new_steps += w.new_steps
        step_updates += w.step_updates
        new_attempts += w.new_attempts
        attempt_updates += w.attempt_updates
        if w.run_values:
            run_updates.append({"id": walker.run_id, **w.run_values})
        if w.contact_set and walker.run.contact_id:
            contact_sets.setdefault(walker.run.contact_id, {}).update(w.contact_set)
        for run_row, step, job in w.children:
            children_runs.append(run_row)
            children_steps.append(step)
            children_jobs.append(job)
        if w.job == "delete":
            deletes.append(walker.run_id)
        elif w.job == "park" and w.due_at is not None:
            parks.append((walker.run_id, w.due_at))
        elif w.job == "release" and w.due_at is not None:
            releases.append((walker.run_id, w.due_at))
        if walker.canceled:
            canceled.append(walker.run_id)
    if new_steps:
        session.execute(insert(RunStep.__table__), new_steps)
    for rows, model in ((step_updates, RunStep), (attempt_updates, DeliveryAttempt)):
        for group in _by_keys(rows):
            session.execute(update(model), group)
    if new_attempts:
        session.execute(DeliveryAttempt.__table__.insert(), [_attempt(a) for a in new_attempts])
    if children_runs:
        session.execute(WorkflowRun.__table__.insert(), children_runs)
        session.execute(RunStep.__table__.insert(), children_steps)
        job_repo.add_many(session, children_jobs)
        notify(session)
    for group in _by_keys(run_updates):
        session.execute(update(WorkflowRun), group)
    for run_id in canceled:
        run_repo.cancel_open_steps(session, run_id, now)
    if contact_sets:
        contacts = contact_repo.get_many(session, contact_sets, lock=True)
        for contact_id, values in contact_sets.items():
            contact = contacts.get(contact_id)
            if contact is not None:
                contact.attributes = {**(contact.attributes or {}), **values}
                contact.updated_at = now
    job_repo.remove(session, deletes)
    job_repo.park(session, parks + releases)


def _by_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Bulk UPDATE by primary key needs every row of one statement to set the same columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _attempt(row: dict[str, Any]) -> dict[str, Any]:
    defaults = {"provider_message_id": None, "provider_response": None, "error": None,
                "suppressed_by": None, "resend_of": None, "actor": None, "reason": None,
                "sent_at": None, "retry_of": None, "html": None, "send_started_at": None,
                "suppression_override": False}
    return {**defaults, **row}


def advance(runtime: Runtime, *, worker: str, limit: int, lease_seconds: float,
            on_claim: Callable[[list[RunWalker]], None] | None = None) -> int:
    """One worker iteration: claim, walk, commit, then perform effects one run at a time.

    Returns how many runs were claimed (0 means there was nothing due)."""
    walkers = claim(runtime, worker=worker, limit=limit, lease_seconds=lease_seconds)
    if not walkers:
        return 0
    if on_claim is not None:
        on_claim(walkers)
    start_child = make_child_starter(runtime)
    for walker in walkers:
        _isolated(walker, lambda w=walker: w.walk(start_child))
    _commit_batch(runtime, walkers)
    crash_point("after_intent")
    for walker in walkers:
        _isolated(walker, lambda w=walker: _perform_all(runtime, w, start_child))
    return len(walkers)


def _perform_all(runtime: Runtime, walker: RunWalker,
                 start_child: Callable[[RunWalker, StartRun], StartResult]) -> None:
    while walker.in_flight is not None and not walker.dropped and not walker.finished:
        walker.perform()
        crash_point("after_effect")
        walker.ctx.now = runtime.clock()
        walker.walk(start_child)
        commit(runtime, [walker])
        crash_point("after_commit")


def _commit_batch(runtime: Runtime, walkers: Sequence[RunWalker]) -> None:
    """One transaction for the whole batch; if it fails for a reason of one run's own, each
    run is written alone, so that run alone is set aside."""
    try:
        commit(runtime, walkers)
    except Exception as exc:
        if _shared_fault(exc):
            raise
        log.warning("writing a batch of %d runs failed (%s); writing them one at a time",
                    len(walkers), type(exc).__name__)
        for walker in walkers:
            _isolated(walker, lambda w=walker: commit(runtime, [w]))


def _isolated(walker: RunWalker, work: Callable[[], None]) -> None:
    """Do `work` for one run. A fault of that run's own (a bug, a value the database
    refuses) sets the run aside: its lease lapses and it resumes from its last committed
    step, as after a crash, while the rest of the batch goes on. A fault everyone shares
    (the database away, locked or in conflict) ends the iteration as before."""
    if walker.dropped:
        return
    try:
        work()
    except Exception as exc:
        if _shared_fault(exc):
            raise
        walker.dropped = True
        log.exception("run set aside: it resumes from its last committed step once its "
                      "lease lapses", extra={"run_id": str(walker.run_id)})


def _shared_fault(exc: BaseException) -> bool:
    return is_unavailable(exc) or is_conflict(exc) or isinstance(exc, OperationalError)


__all__ = ["MAX_STEPS_PER_CLAIM", "RunWalker", "advance", "claim", "commit", "step_row"]

