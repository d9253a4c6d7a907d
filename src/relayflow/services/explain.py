"""Why a workflow did or did not reach a contact (DESIGN §8.3): a verdict and its reasons,
each read from a record written where the decision was made (a run and its steps, a
delivery attempt, a trigger event, a schedule tick); nothing here is inferred from what
is missing, except `no_run`, which says exactly that, and `not_in_audience`, which a
tick's record implies for a contact that existed when it fired and has no run of it.

The verdict, best first: `delivered` (a message of the workflow reached the contact's
provider and was confirmed delivered), `sent` (accepted by the provider), `in_progress`
(a run or a message still under way), `not_sent` (runs, but no message went out),
`not_enrolled` (no run in the range).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relayflow.engine import templates
from relayflow.errors import InvalidInput, NotFound
from relayflow.services import contact as contact_service
from relayflow.services import frequency as frequency_service
from relayflow.services import schedule as schedule_service
from relayflow.services import trigger_events
from relayflow.services import workflow as workflow_service
from relayflow.services.run import RANGES, time_window
from relayflow.storage.models import Contact, DeliveryAttempt, RunStep, Workflow, WorkflowRun
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import schedule as schedule_repo
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories.delivery import DeliveryFilter
from relayflow.storage.repositories.run import RunFilter

VERDICTS = ("delivered", "sent", "in_progress", "not_sent", "not_enrolled")
# The closed set of reason codes (docs/runs.md).
CODES = ("workflow_inactive", "trigger_rejected", "duplicate_trigger", "not_in_audience",
         "no_run", "branch_not_taken", "waiting", "canceled", "run_failed", "no_address",
         "suppressed_unsubscribed", "suppressed_bounced", "frequency_cap", "delivery_failed",
         "bounced", "sent", "delivered", "in_progress")
DEFAULT_RANGE = "7d"
RUNS = 50  # the newest runs of the range that are explained
# An attempt's suppressed_by (services/effects.py), as a reason code; a complaint
# suppresses the channel as an unsubscribe does.
_SUPPRESSED = {"unsubscribed": "suppressed_unsubscribed", "complained": "suppressed_unsubscribed",
               "bounced": "suppressed_bounced", "frequency_cap": "frequency_cap"}
_ADDRESS = {"email": "email", "sms": "phone"}
_ATTEMPT = {"FAILED": "delivery_failed", "BOUNCED": "bounced", "SENT": "sent",
            "DELIVERED": "delivered", "QUEUED": "in_progress"}


_SAYS = {
    "workflow_inactive": "The workflow is not active: it opens no run.",
    "trigger_rejected": "A trigger for this contact was refused.",
    "duplicate_trigger": "A trigger repeated an earlier one's idempotency key: it opened no "
                         "new run.",
    "not_in_audience": "A tick of the schedule left this contact out of its audience.",
    "no_run": "Nothing started a run of this workflow for this contact in the range.",
    "branch_not_taken": "A condition sent the run down a branch without this message.",
    "waiting": "The run is waiting before its next step.",
    "in_progress": "Still under way.",
    "canceled": "The run was canceled.",
    "run_failed": "The run failed before the message.",
    "no_address": "The contact has no address on the message's channel.",
    "suppressed_unsubscribed": "Not sent: the contact unsubscribed from this channel.",
    "suppressed_bounced": "Not sent: an earlier message to this address bounced.",
    "frequency_cap": "Not sent: the channel's frequency cap for this contact was reached.",
    "delivery_failed": "The provider refused the message, or it could not be reached.",
    "bounced": "The message bounced.",
    "sent": "The provider accepted the message.",
    "delivered": "The provider confirmed the message was delivered.",
}
_VERDICTS = {
    "delivered": "Delivered: a message of {workflow} reached this contact.",
    "sent": "Sent: the provider accepted a message of {workflow}; no delivery is confirmed.",
    "in_progress": "In progress: a run of {workflow} for this contact is still under way.",
    "not_sent": "Not sent: {workflow} ran for this contact, but no message went out.",
    "not_enrolled": "Not enrolled: no run of {workflow} for this contact in the range.",
}


def says(code: str) -> str:
    """A reason code in a sentence, for a person."""
    return _SAYS.get(code, code.replace("_", " "))


def verdict_says(verdict: str, workflow_key: str) -> str:
    return _VERDICTS[verdict].format(workflow=workflow_key)


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    at: datetime
    run_id: uuid.UUID | None = None
    attempt_id: uuid.UUID | None = None
    node_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Check:
    """One thing a run started now would meet, for this contact ("would it send now?")."""

    check: str  # workflow_active, audience, address, suppression, frequency_cap
    ok: bool
    says: str
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    contact: Contact
    workflow: Workflow
    start: datetime
    end: datetime
    verdict: str
    reasons: list[Reason]  # newest first
    more: bool  # runs beyond the RUNS newest were not explained
    now: list[Check]  # would it send now?


def explain(session: Session, *, workspace_id: uuid.UUID, contact_id: str, workflow_key: str,
            range_: str | None = None, created_from: datetime | None = None,
            created_to: datetime | None = None, now: datetime) -> Explanation:
    contact = contact_service.get(session, workspace_id=workspace_id, contact_id=contact_id)
    if not workflow_key:
        raise InvalidInput("workflow is required: the key of the workflow to explain")
    workflow = workflow_repo.get_by_key(session, workspace_id, workflow_key)
    if workflow is None:
        raise NotFound(f"No workflow {workflow_key!r} in this workspace.")
    if range_ is not None and range_ not in RANGES:
        raise InvalidInput(f"range must be one of {', '.join(RANGES)}")
    default = None if range_ or created_from or created_to else DEFAULT_RANGE
    start, end = time_window(range_=range_ or default, created_from=created_from,
                             created_to=created_to, now=now)
    start = start or workflow.created_at
    end = min(end or now, now)
    runs = [row.run for row in run_repo.list_page(session, RunFilter(
        workspace_id=workspace_id, workflow_id=workflow.id, contact_id=contact.id,
        created_from=start, created_to=end), limit=RUNS + 1)]
    more, runs = len(runs) > RUNS, runs[:RUNS]
    reasons: list[Reason] = []
    reasons += _triggers(session, contact, workflow, start, end)
    reasons += _ticks(session, contact, workflow, runs, start, end)
    reasons += _runs(session, contact, workflow, runs, start, end)
    if not runs:
        reasons.append(Reason("no_run", start, detail={"until": end.isoformat()}))
    if workflow.status != "ACTIVE":
        reasons.append(Reason("workflow_inactive", now, detail={"status": workflow.status}))
    reasons.sort(key=lambda r: r.at, reverse=True)
    return Explanation(contact, workflow, start, end, _verdict(runs, reasons), reasons, more,
                       preview(session, contact, workflow, now=now))


def preview(session: Session, contact: Contact, workflow: Workflow, *,
            now: datetime) -> list[Check]:
    """What a run of the workflow started for this contact now would meet, evaluated
    without running anything: the workflow's status, a schedule's audience, and for each
    channel its messages use, an address, a suppression and the frequency cap."""
    checks = [Check("workflow_active", workflow.status == "ACTIVE",
                    "The workflow is active." if workflow.status == "ACTIVE" else
                    f"The workflow is {workflow.status}: nothing starts a run of it.")]
    if workflow.current_version_id is None:
        return checks
    definition = workflow_service.current_version(session, workflow).definition
    trigger = workflow_service.trigger_of_definition(definition)
    audience = trigger.get("audience") if trigger.get("type") == "schedule" else None
    if audience is not None:
        try:
            matched = bool(templates.evaluate(str(audience),
                                              {"contact": contact_repo.as_variables(contact)}))
            says = ("The schedule's audience includes this contact." if matched else
                    f"The schedule's audience ({audience}) leaves this contact out.")
        except Exception as exc:  # an operator's expression: raising means "no match"
            matched, says = False, (f"The schedule's audience ({audience}) fails for this "
                                    f"contact, so it leaves it out: {type(exc).__name__}.")
        checks.append(Check("audience", matched, says))
    nodes = definition.get("nodes") or {}
    sends = [n for n in nodes.values() if isinstance(n, dict) and n.get("type") == "SEND_MESSAGE"]
    caps = frequency_service.show(session, workspace_id=contact.workspace_id)
    for channel in sorted({str(n.get("channel")) for n in sends}):
        field = _ADDRESS[channel]
        own = all("to" in n for n in sends if n.get("channel") == channel)
        has = bool(getattr(contact, field, None)) or own
        checks.append(Check("address", has, (
            "Its messages name their own recipient." if own else
            f"The contact has a {field}." if has else
            f"The contact has no {field}: its {channel} messages cannot be sent."),
            channel))
        why = (contact.suppressed or {}).get(channel)
        checks.append(Check("suppression", why is None, (
            f"The contact's {channel} is not suppressed." if why is None else
            f"The contact's {channel} is suppressed ({why}): its messages are not sent."),
            channel))
        cap = caps.get(channel)
        if cap is not None:
            taken = frequency_service.counted(session, workspace_id=contact.workspace_id,
                                              contact_id=contact.id, channel=channel, now=now)
            checks.append(Check("frequency_cap", taken < cap, (
                f"{taken} of {cap} {channel} messages a day sent to this contact today."),
                channel))
    return checks


def _verdict(runs: list[WorkflowRun], reasons: list[Reason]) -> str:
    codes = {r.code for r in reasons}
    if "delivered" in codes:
        return "delivered"
    if "sent" in codes:
        return "sent"
    if "in_progress" in codes or "waiting" in codes:
        return "in_progress"
    return "not_sent" if runs else "not_enrolled"


def _triggers(session: Session, contact: Contact, workflow: Workflow, start: datetime,
              end: datetime) -> list[Reason]:
    return [Reason(event.code, event.at, run_id=event.run_id,
                   detail={"source": event.source,
                           **({"cause": event.cause} if event.cause else {}),
                           "says": trigger_events.says(event)})
            for event in trigger_events.of_contact(
                session, workspace_id=contact.workspace_id, contact_id=contact.id,
                workflow_ids=[workflow.id], start=start, end=end)]


def _ticks(session: Session, contact: Contact, workflow: Workflow, runs: list[WorkflowRun],
           start: datetime, end: datetime) -> list[Reason]:
    """A schedule's ticks in the range that fired after the contact existed and opened no
    run for it."""
    if workflow.trigger_type != "schedule":
        return []
    keys = {run.idempotency_key for run in runs}
    found = []
    for tick in schedule_repo.ticks_of(session, contact.workspace_id, workflow.id,
                                       start=start, end=end):
        if tick.fired_at < contact.created_at:
            continue
        if schedule_service.idempotency_key(tick.tick, contact.id) in keys:
            continue
        found.append(Reason("not_in_audience", tick.tick, detail={
            "audience": tick.audience, "opened": tick.opened, "outside": tick.outside,
            "audience_errors": tick.audience_errors}))
    return found


def _runs(session: Session, contact: Contact, workflow: Workflow, runs: list[WorkflowRun],
          start: datetime, end: datetime) -> list[Reason]:
    if not runs:
        return []
    steps = run_repo.steps_of(session, [run.id for run in runs])
    attempts: dict[uuid.UUID | None, list[DeliveryAttempt]] = {}
    for row in delivery_repo.list_page(session, DeliveryFilter(
            workspace_id=contact.workspace_id, workflow_id=workflow.id, contact_id=contact.id,
            created_from=start, created_to=None), limit=RUNS * 4):
        attempts.setdefault(row.attempt.run_id, []).append(row.attempt)
    found: list[Reason] = []
    for run in runs:
        sent = attempts.get(run.id, [])
        found += [_of_attempt(run, attempt) for attempt in sent]
        found += _of_run(run, steps.get(run.id, []), bool(sent))
    return found


def _of_attempt(run: WorkflowRun, attempt: DeliveryAttempt) -> Reason:
    if attempt.status == "SUPPRESSED":
        code = _SUPPRESSED.get(attempt.suppressed_by or "", "suppressed_unsubscribed")
    else:
        code = _ATTEMPT.get(attempt.status, "in_progress")
    detail: dict[str, Any] = {"channel": attempt.channel, "status": attempt.status}
    if attempt.error:
        detail["error"] = attempt.error
    if attempt.suppressed_by:
        detail["suppressed_by"] = attempt.suppressed_by
    return Reason(code, attempt.created_at, run_id=run.id, attempt_id=attempt.id,
                  detail=detail)


def _of_run(run: WorkflowRun, steps: list[RunStep], sent: bool) -> list[Reason]:
    """What the run itself says: still under way, waiting, canceled, failed; and when it
    ended without a message, each branch its conditions took."""
    last = steps[-1] if steps else None
    node = last.node_id if last is not None else None
    if run.status in ("PENDING", "RUNNING"):
        if run.wake_at is not None and last is not None and last.node_type == "WAIT":
            return [Reason("waiting", last.started_at, run_id=run.id, node_id=node,
                           detail={"until": run.wake_at.isoformat()})]
        return [Reason("in_progress", run.created_at, run_id=run.id, node_id=node)]
    if run.status == "CANCELED":
        return [Reason("canceled", run.finished_at or run.created_at, run_id=run.id,
                       node_id=node, detail={"reason": run.cancel_reason})]
    if run.status == "FAILED":
        failed = next((s for s in reversed(steps) if s.status == "FAILED"), last)
        no_address = failed is not None and (failed.output or {}).get("reason") == "no_address"
        return [Reason("no_address" if no_address else "run_failed",
                       run.finished_at or run.created_at, run_id=run.id,
                       node_id=failed.node_id if failed is not None else None,
                       detail={"error": run.error})]
    if sent:
        return []
    return [Reason("branch_not_taken", step.finished_at or step.started_at, run_id=run.id,
                   node_id=step.node_id,
                   detail={"branch": step.branch, **{k: v for k, v in step.output.items()}})
            for step in steps if step.node_type == "CONDITION"]
