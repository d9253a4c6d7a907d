"""Webhook triggers: an inbound POST to /hooks/{token} opens a run; tokens can be rotated.

The order of checks matters: the token is looked up first (404), the request is counted
against the webhook's rate limit (429), then the signature is verified (401) before anything
else about the workflow or the payload is revealed. Signatures, secret rotation and the
memory of signed requests are services/signed.py's.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String
from sqlalchemy.orm import Session, sessionmaker

from relayflow.engine import templates
from relayflow.errors import (
    Conflict,
    InvalidInput,
    MalformedInput,
    NotFound,
    RelayflowError,
    Unauthorized,
)
from relayflow.services import contact as contact_service
from relayflow.services import rate_limit as rate_limit_service
from relayflow.services import run as run_service
from relayflow.services import signed, trigger_events
from relayflow.services import workflow as workflow_service
from relayflow.services import workspace as workspace_service
from relayflow.services.runtime import SecretCipher
from relayflow.storage.db import session_scope
from relayflow.storage.models import Contact, Workflow, WorkflowRun
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import webhook as webhook_repo

log = logging.getLogger(__name__)

def _length(column: ColumnElement[Any]) -> int:
    kind = column.type
    assert isinstance(kind, String)
    assert kind.length is not None
    return kind.length


# What the columns hold: a longer value would be refused by PostgreSQL (and silently kept
# by SQLite), so it is refused here, on both, with a message.
_IDEMPOTENCY_KEY_LENGTH = _length(WorkflowRun.__table__.c.idempotency_key)
_CONTACT_FIELD_LENGTH = {
    field: _length(Contact.__table__.c[field]) for field in ("email", "phone", "external_id")
}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what new_token() makes


def new_token() -> str:
    return secrets.token_urlsafe(24)


def url_of(workflow: Workflow, *, base_url: str) -> str | None:
    path = workflow_service.webhook_path(workflow)
    return f"{base_url.rstrip('/')}{path}" if path else None


def _check_signature(
    session: Session, *, workflow: Workflow, secret_name: str, header: str | None, body: bytes,
    cipher: SecretCipher, now: datetime,
) -> int:
    values = signed.signing_values(session, workspace_id=workflow.workspace_id,
                                   name=secret_name, cipher=cipher,
                                   used_by=f"webhook of workflow {workflow.key!r}")
    if values is None:
        raise Unauthorized("This webhook's signing secret is not available, so no request can "
                           "be verified; ask the workflow's owner to set it.").because("signature")
    current, previous = values
    return signed.verify_signature(secret=current, previous=previous, header=header,
                                   body=body, now=now)


# --- replays --------------------------------------------------------------------------


def _replayed(session: Session, *, workflow: Workflow, key: str,
              now: datetime) -> run_service.Enrolled:
    """The answer to a replayed signed request: the run it opened, counted as a duplicate.
    None opened under this key means an unsigned header was changed to pass as new."""
    existing = run_repo.find_by_idempotency_key(session, workflow.id, key)
    if existing is None:
        raise Conflict("This signed request was already received; sign each new request "
                       "with the time it is sent.").because("replay")
    return run_service.duplicate(session, existing, source="webhook", now=now)


# --- the payload ----------------------------------------------------------------------


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_storable(event: dict[str, Any]) -> None:
    """Refuse strings PostgreSQL's JSON cannot hold (NUL, unpaired surrogates), on both
    databases, so a payload is accepted or refused the same way everywhere."""
    pending: list[Any] = [event]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("The payload contains an unpaired UTF-16 surrogate "
                                   "(\\ud800-\\udfff), which cannot be stored.") from None
            if "\x00" in value:
                raise InvalidInput("The payload contains a NUL character (\\u0000), which "
                                   "cannot be stored.")


def parse_event(body: bytes) -> dict[str, Any]:
    """The raw body as the run's `event`: a JSON object, else 400 (not JSON) or 422."""
    if not body.strip():
        raise MalformedInput("The request body is empty; send a JSON object.")
    try:
        event = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedInput("The request body is nested too deeply.") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, out-of-range numbers
        raise MalformedInput(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(event), "a number")
        raise InvalidInput(f"The request body must be a JSON object, not {kind}.")
    _check_storable(event)
    return event


def contact_spec(mapping: Mapping[str, Any], event: dict[str, Any]) -> dict[str, str]:
    """Render the trigger's `contact` templates over `event`: `{"email": "…", …}`."""
    spec: dict[str, str] = {}
    for field, template in mapping.items():
        try:
            value = templates.render(str(template), {"event": event}).strip()
        except Exception as exc:  # any error in the operator's template; see engine.stepper
            raise InvalidInput(
                f"The trigger's contact mapping failed for {field} ({template!s}): "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if len(value) > _CONTACT_FIELD_LENGTH.get(field, 200):
            raise InvalidInput(f"The trigger's contact mapping gave a {field} longer than "
                               f"{_CONTACT_FIELD_LENGTH.get(field, 200)} characters.")
        if value:
            spec[field] = value
    if not spec:
        fields = ", ".join(mapping)
        raise InvalidInput(f"The trigger's contact mapping ({fields}) gave no value for this "
                           "payload, so there is no contact to run for.")
    return spec


def _resolve_contact(
    session: Session, *, workspace_id: uuid.UUID, spec: dict[str, str], now: datetime,
    phone_region: str | None,
) -> Contact:
    try:
        return contact_service.resolve(session, workspace_id=workspace_id, spec=spec, now=now,
                                       phone_region=phone_region)
    except InvalidInput as exc:
        raise InvalidInput(f"The trigger's contact mapping gave an invalid contact: "
                           f"{exc.detail}") from None


# --- use cases ------------------------------------------------------------------------


_FOUND = "relayflow.webhook_workflows"
_TRIGGERS = "relayflow.webhook_triggers"


def _find(session: Session, token: str) -> Workflow:
    # Anything but a token's alphabet (a NUL would even break PostgreSQL's comparison) is
    # answered without a query. A batch of requests (receive_many) shares one transaction,
    # and looks each token up once in it.
    found: dict[str, Workflow | None] = session.info.setdefault(_FOUND, {})
    if token not in found:
        found[token] = (webhook_repo.get_by_token(session, token)
                        if _TOKEN_RE.fullmatch(token) else None)
    workflow = found[token]
    if workflow is None or workflow.trigger_type != "webhook":
        raise NotFound("No webhook at this address (the token is unknown or was rotated).")
    return workflow


def _trigger(session: Session, workflow: Workflow) -> dict[str, Any]:
    """The trigger of the workflow's current version, read once per transaction."""
    triggers: dict[uuid.UUID, dict[str, Any]] = session.info.setdefault(_TRIGGERS, {})
    if workflow.id not in triggers:
        triggers[workflow.id] = workflow_service.trigger_of(
            workflow_service.current_version(session, workflow))
    return triggers[workflow.id]


def admit(
    session: Session, *, token: str, now: datetime, per_minute: int
) -> rate_limit_service.Admission:
    """Count a request against its webhook's limit, before anything else is checked (so
    unsigned or invalid floods are limited too). An unknown token is 404 and counts nothing.
    The count is per workflow: it is what the current token names, and it keeps no copy of
    the token. Commit before acting on the answer, so a refused request stays counted."""
    workflow = _find(session, token)
    return rate_limit_service.count(session, key=f"hook:{workflow.id}", limit=per_minute,
                                    now=now)


@dataclass(frozen=True, slots=True)
class _Checked:
    """A request that passed every check: what opening its run needs."""

    workflow: Workflow
    event: dict[str, Any]
    idempotency_key: str | None
    contact: dict[str, str] | None  # the rendered contact mapping, if the trigger has one


def _check(
    session: Session, *, token: str, body: bytes, signature: str | None,
    idempotency_key: str | None, cipher: SecretCipher, now: datetime,
) -> _Checked | run_service.Enrolled:
    """Everything a request must pass before its run is opened; a signed request received
    before is answered here (the run it opened, as a duplicate)."""
    workflow = _find(session, token)
    trigger = _trigger(session, workflow)
    secret_name = trigger.get("signing_secret")
    signed_at = None
    if secret_name:
        signed_at = _check_signature(session, workflow=workflow, secret_name=str(secret_name),
                                     header=signature, body=body, cipher=cipher, now=now)
    event = parse_event(body)
    if workflow.status != "ACTIVE":
        raise Conflict(f"Workflow {workflow.key!r} is {workflow.status}; it accepts webhook "
                       "requests only while ACTIVE.").because("workflow_inactive")
    if idempotency_key is not None and (
        not 1 <= len(idempotency_key) <= _IDEMPOTENCY_KEY_LENGTH or "\x00" in idempotency_key
    ):
        raise InvalidInput(f"The Idempotency-Key header must be 1 to "
                           f"{_IDEMPOTENCY_KEY_LENGTH} characters, without NUL.")
    if signed_at is not None:
        idempotency_key = idempotency_key or signed.replay_key(signed_at, body)
        if signed.remember(session, scope=f"hook:{workflow.id}", timestamp=signed_at, body=body):
            return _replayed(session, workflow=workflow, key=idempotency_key, now=now)
    mapping = trigger.get("contact")
    return _Checked(workflow, event, idempotency_key,
                    contact_spec(mapping, event) if mapping else None)


def receive(
    session: Session, *, token: str, body: bytes, signature: str | None,
    idempotency_key: str | None, cipher: SecretCipher, now: datetime,
    phone_region: str | None = None, traceparent: str | None = None,
) -> run_service.Enrolled:
    """Open a run from an inbound webhook request (the raw body becomes `event`)."""
    checked = _check(session, token=token, body=body, signature=signature,
                     idempotency_key=idempotency_key, cipher=cipher, now=now)
    if isinstance(checked, run_service.Enrolled):
        return checked
    contact = None
    if checked.contact is not None:
        contact = _resolve_contact(session, workspace_id=checked.workflow.workspace_id,
                                   spec=checked.contact, now=now, phone_region=phone_region)
    return run_service.enroll(session, workflow=checked.workflow, contact=contact,
                              trigger_type="webhook", event=checked.event, now=now,
                              idempotency_key=checked.idempotency_key,
                              traceparent=traceparent)


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """One webhook request as received: what `receive` needs of it."""

    token: str
    body: bytes
    signature: str | None = None
    idempotency_key: str | None = None
    traceparent: str | None = None  # of its intake's span, when tracing is on


@dataclass(frozen=True, slots=True)
class Accepted:
    enrolled: run_service.Enrolled
    admission: rate_limit_service.Admission


def receive_many(
    sessions: sessionmaker[Session], requests: Sequence[Inbound], *, cipher: SecretCipher,
    clock: Callable[[], datetime], per_minute: int, phone_region: str | None = None,
) -> list[Accepted | Exception]:
    """Admit and receive webhook requests that arrived together, in one transaction (group
    commit: one write lock and one commit for all of them instead of two each).

    Each request's answer is what it alone would have got. The batch (even of one) is
    first written all or nothing (`_receive_together`): when every request succeeds, as
    under a steady flow, that is all. When one fails (refused, invalid, or beaten to a new
    contact or an idempotency key), that transaction is rolled back and the batch written
    again request by request, each request's rate-limit count and run in savepoints of their
    own, so a request refused or failing undoes only its own writes and a refused request
    stays counted. The answers are given once the transaction is committed; if the commit
    fails, every request gets that error."""
    try:
        with session_scope(sessions) as session:
            try:
                together: list[Accepted | Exception] = list(_receive_together(
                    session, requests, cipher=cipher, clock=clock, per_minute=per_minute,
                    phone_region=phone_region))
            except Exception as exc:  # each request gets its own answer from the next pass
                raise _OneFailed from exc
        # A failed commit is not tried again: it may have happened (a connection lost
        # during COMMIT), and writing the batch again could open its runs twice.
        return together
    except _OneFailed:
        pass
    answers: list[Accepted | Exception] = []
    with session_scope(sessions) as session:
        for request in requests:
            try:
                now = clock()
                admission = rate_limit_service.UNLIMITED
                if per_minute > 0:
                    with session.begin_nested():
                        admission = admit(session, token=request.token, now=now,
                                          per_minute=per_minute)
                    admission.check("This webhook", reason="rate_limit")
                with session.begin_nested():
                    enrolled = receive(session, token=request.token, body=request.body,
                                       signature=request.signature,
                                       idempotency_key=request.idempotency_key,
                                       cipher=cipher, now=now, phone_region=phone_region,
                                       traceparent=request.traceparent)
                answers.append(Accepted(enrolled, admission))
            except Exception as exc:  # the request's own answer (404, 401, 429, …)
                answers.append(exc)
                if isinstance(exc, RelayflowError):
                    _refused(session, request, exc, now=now, phone_region=phone_region)
    return answers


def _refused(session: Session, request: Inbound, error: RelayflowError, *, now: datetime,
             phone_region: str | None) -> None:
    """Record a refused request (services/trigger_events.py) against its workflow, and the
    contact its payload names when that contact is known; a request to an unknown address
    names no workflow, and is not recorded."""
    refusal = trigger_events.refusal_of(error)
    if refusal is None:
        return
    with session.begin_nested():
        try:
            workflow = _find(session, request.token)
        except NotFound:
            return
        contact = None
        mapping = _trigger(session, workflow).get("contact")
        if mapping:
            try:
                contact = contact_service.find_existing(
                    session, workspace_id=workflow.workspace_id,
                    spec=contact_spec(mapping, parse_event(request.body)),
                    phone_region=phone_region)
            except RelayflowError:  # the payload names no usable contact
                contact = None
        trigger_events.record(session, workspace_id=workflow.workspace_id,
                              workflow_id=workflow.id,
                              contact_id=contact.id if contact is not None else None,
                              source="webhook", code=refusal.code, cause=refusal.cause, now=now)


class _OneFailed(Exception):
    """A request of an all-or-nothing batch failed before the commit."""


def _receive_together(
    session: Session, requests: Sequence[Inbound], *, cipher: SecretCipher,
    clock: Callable[[], datetime], per_minute: int, phone_region: str | None,
) -> list[Accepted]:
    """Every request checked, then the batch's contacts found or created in one go and its
    runs opened in one go; the first error of any request ends it (raised)."""
    checked: list[tuple[_Checked | run_service.Enrolled, rate_limit_service.Admission,
                        datetime]] = []
    for request in requests:
        now = clock()
        admission = rate_limit_service.UNLIMITED
        if per_minute > 0:
            admission = admit(session, token=request.token, now=now, per_minute=per_minute)
            admission.check("This webhook")
        checked.append((_check(session, token=request.token, body=request.body,
                               signature=request.signature,
                               idempotency_key=request.idempotency_key, cipher=cipher,
                               now=now), admission, now))
    pending = [(i, item, now) for i, (item, _, now) in enumerate(checked)
               if isinstance(item, _Checked)]
    contacts: dict[int, Contact] = {}
    by_workspace: dict[uuid.UUID, list[tuple[int, dict[str, str], datetime]]] = {}
    for i, item, now in pending:
        if item.contact is not None:
            by_workspace.setdefault(item.workflow.workspace_id, []).append((i, item.contact, now))
    for workspace_id, wanted in by_workspace.items():
        found = contact_service.resolve_many(
            session, workspace_id=workspace_id, specs=[spec for _, spec, _ in wanted],
            now=wanted[0][2], phone_region=phone_region)
        contacts.update(zip((i for i, _, _ in wanted), found, strict=True))
    enrolled = run_service.enroll_many(session, [
        run_service.Opening(workflow=item.workflow, contact=contacts.get(i), event=item.event,
                            idempotency_key=item.idempotency_key, now=now,
                            traceparent=requests[i].traceparent)
        for i, item, now in pending], trigger_type="webhook")
    opened = dict(zip((i for i, _, _ in pending), enrolled, strict=True))
    return [Accepted(opened[i] if isinstance(item, _Checked) else item, admission)
            for i, (item, admission, _) in enumerate(checked)]


def rotate_token(
    session: Session, *, workspace_id: uuid.UUID, key: str, actor: str, now: datetime
) -> Workflow:
    """Give the workflow a new webhook token; the old address answers 404 from now on."""
    workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
    if workflow.trigger_type != "webhook":
        raise Conflict(f"Workflow {key!r} has a {workflow.trigger_type} trigger; only webhook "
                       "workflows have a webhook address.")
    workflow.webhook_token = new_token()
    workflow.updated_at = now
    session.flush()
    # The token itself stays out of the audit trail: with it, anyone can start runs.
    workspace_service.audit(session, workspace_id=workspace_id, actor=actor,
                            action="workflow.webhook_rotate", target_type="workflow",
                            target_id=key, now=now)
    return workflow
