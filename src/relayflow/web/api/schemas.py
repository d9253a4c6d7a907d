"""Request and response bodies of the JSON API, built from service results."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from relayflow.engine.status import RunStatus, StepStatus
from relayflow.services import run as run_service
from relayflow.services import run_view
from relayflow.services import schedule as schedule_service
from relayflow.services import workflow as workflow_service
from relayflow.services.secret import SecretInfo
from relayflow.storage.models import (
    Contact,
    DeliveryAttempt,
    RunStep,
    Workflow,
    WorkflowVersion,
)
from relayflow.storage.repositories.run import RunRow

WorkflowStatus = Literal["DRAFT", "ACTIVE", "INACTIVE"]


def text_fault(value: str) -> str | None:
    """Why `value` is not text both databases can store, or None: PostgreSQL refuses NUL
    characters outright, and neither can encode a lone surrogate."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return None


def clean_text(value: str) -> str:
    """`text_fault` as a check: refusing such text here answers 422 on both databases alike."""
    fault = text_fault(value)
    if fault is not None:
        raise ValueError(fault)
    return value


# Far deeper than any event, attribute set or definition needs, and far enough under
# Python's recursion limit that every later step may walk such a value recursively.
MAX_JSON_DEPTH = 64


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests lists and objects more than `limit` deep (without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return False


def clean_json(value: Any) -> Any:
    """`clean_text` for every key and string inside a JSON value, which must be plain JSON:
    no NaN or infinity (Python's JSON reader accepts them; PostgreSQL's JSONB does not),
    nested at most MAX_JSON_DEPTH deep."""
    if json_depth_exceeds(value):
        raise ValueError(f"must not nest lists and objects more than {MAX_JSON_DEPTH} deep")
    return _clean_json(value)


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must not hold NaN or infinite numbers")
        return value
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    raise ValueError(f"must be plain JSON (a {type(value).__name__} is not)")


Text = Annotated[str, AfterValidator(clean_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(clean_json)]


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


# --- workflows ------------------------------------------------------------------------


class WorkflowRead(BaseModel):
    key: str
    name: str
    status: WorkflowStatus
    trigger: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    webhook_url: str | None

    @classmethod
    def build(cls, workflow: Workflow, version: WorkflowVersion, *, base_url: str) -> WorkflowRead:
        return cls(**_workflow_fields(workflow, version, base_url=base_url))


def _workflow_fields(
    workflow: Workflow, version: WorkflowVersion, *, base_url: str
) -> dict[str, Any]:
    path = workflow_service.webhook_path(workflow)
    return {
        "key": workflow.key,
        "name": workflow.name,
        "status": workflow.status,
        "trigger": workflow_service.trigger_of(version),
        "version": version.number,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "webhook_url": f"{base_url.rstrip('/')}{path}" if path else None,
    }


class WorkflowSaved(WorkflowRead):
    new_version: bool


class WorkflowVersionRead(BaseModel):
    number: int
    created_at: datetime


class WorkflowDetail(WorkflowRead):
    versions: list[WorkflowVersionRead]
    definition: dict[str, Any]
    next_fire_times: list[datetime] | None = Field(
        default=None, description="Schedule triggers: the next five fire times (UTC).")

    @classmethod
    def from_detail(
        cls, detail: workflow_service.Detail, *, base_url: str, now: datetime
    ) -> WorkflowDetail:
        trigger = workflow_service.trigger_of(detail.current)
        upcoming = (schedule_service.next_fire_times(trigger, now=now, count=5)
                    if trigger.get("type") == "schedule" else None)
        return cls(
            **_workflow_fields(detail.workflow, detail.current, base_url=base_url),
            versions=[WorkflowVersionRead(number=v.number, created_at=v.created_at)
                      for v in detail.versions],
            definition=detail.current.definition,
            next_fire_times=upcoming,
        )


class WorkflowList(BaseModel):
    items: list[WorkflowRead]


# --- runs -----------------------------------------------------------------------------


class ContactSpec(BaseModel):
    """Who the run is for: an existing contact's id, or an address to find or create."""

    model_config = ConfigDict(extra="forbid")

    id: Text | None = None
    email: Text | None = Field(default=None, max_length=320)
    phone: Text | None = Field(default=None, max_length=64)
    external_id: Text | None = Field(default=None, max_length=200)
    attributes: JsonObject | None = Field(
        default=None, description="Attributes for a contact created by this call."
    )


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"contact": {"email": "ada@example.com", "attributes": {"first_name": "Ada"}},
         "event": {"plan": "pro"}, "idempotency_key": "signup-1842"}]})

    contact: ContactSpec | None = None
    event: JsonObject = Field(default_factory=dict)
    idempotency_key: Text | None = Field(default=None, min_length=1, max_length=200)


class RunEnqueued(BaseModel):
    id: uuid.UUID
    status: RunStatus
    duplicate: bool


class ContactRef(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None


class Waiting(BaseModel):
    """Where a parked run waits and until when."""

    node: str = Field(description="The WAIT node the run is parked at.")
    until: datetime = Field(description="When the run wakes up and continues.")


class RetryRead(BaseModel):
    """The newest run retrying a run, and its status."""

    id: uuid.UUID
    status: RunStatus


class RunRead(BaseModel):
    id: uuid.UUID
    workflow: str
    version: int
    contact: ContactRef | None
    status: RunStatus
    trigger: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    current_node: str | None
    waiting_until: Waiting | None = Field(
        description="Set while the run is parked at a WAIT node; null otherwise."
    )
    error: str | None
    parent_run_id: uuid.UUID | None
    retry_of: uuid.UUID | None
    duplicates_ignored: int
    fingerprint: str | None = Field(
        description="A FAILED run's cause (GET /api/v1/failures); null otherwise.")
    canceled_by: str | None = Field(
        description="Who asked to cancel the run: `member:<email>`, `api-key:<prefix>`, "
                    "`deactivation` (its workflow was deactivated) or `bulk:<operation id>`; "
                    "set as soon as the cancel is asked for, so also on a run its worker has "
                    "still to stop. Null when nobody did.")
    cancel_reason: str | None = Field(
        description="Why it was canceled, as the canceler said; null when no reason was given.")
    latest_retry: RetryRead | None = Field(
        description="The newest run retrying this one (retry_of), with its status; null when "
                    "the run was never retried.")

    @classmethod
    def from_row(cls, row: RunRow) -> RunRead:
        return cls(**_run_fields(row))


def _run_fields(row: RunRow) -> dict[str, Any]:
    run = row.run
    contact = (ContactRef(id=run.contact_id, email=row.contact_email, phone=row.contact_phone)
               if run.contact_id is not None else None)
    return {
        "id": run.id,
        "workflow": row.workflow_key,
        "version": row.version_number,
        "contact": contact,
        "status": run.status,
        "trigger": run.trigger_type,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": _ms(run.started_at, run.finished_at),
        "current_node": run.current_node,
        "waiting_until": (Waiting(node=parked[0], until=parked[1])
                          if (parked := run_service.waiting(run)) else None),
        "error": run.error,
        "parent_run_id": run.parent_run_id,
        "retry_of": run.retry_of,
        "duplicates_ignored": run.duplicates_ignored,
        "fingerprint": run.fingerprint,
        "canceled_by": run.canceled_by,
        "cancel_reason": run.cancel_reason,
        "latest_retry": (RetryRead(id=row.latest_retry.id, status=row.latest_retry.status)
                         if row.latest_retry is not None else None),
    }


class RunRetry(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"version": "current"}]})

    version: Literal["original", "current"] = Field(
        "original", description="Run the version the original ran (`original`), or the "
                                "workflow's current version, with any fix saved since.")


class RunCancel(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"reason": "sent to the wrong audience"}]})

    reason: Text | None = Field(
        None, max_length=run_service.MAX_CANCEL_REASON,
        description="Why, shown on the run as its cancel_reason.")


class RunRetried(BaseModel):
    id: uuid.UUID = Field(description="The new run.")
    status: RunStatus
    retry_of: uuid.UUID = Field(description="The run it retries.")


class RunCanceled(RunRead):
    cancel_requested: bool = Field(
        description="True when a worker holds the run: it stops at the next step boundary."
    )

    @classmethod
    def from_canceled(cls, row: RunRow) -> RunCanceled:
        return cls(**_run_fields(row), cancel_requested=row.run.status != "CANCELED")


class StepAttemptRead(BaseModel):
    """One delivery attempt a SEND_MESSAGE step made (GET /api/v1/deliveries/{id} has it all)."""

    id: uuid.UUID
    status: str
    attempt_number: int


class StepRead(BaseModel):
    seq: int
    node_id: str
    type: str
    status: StepStatus
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    branch: str | None
    output: dict[str, Any]
    error: str | None
    request: dict[str, Any] | None
    response: dict[str, Any] | None
    delivery_attempt_id: uuid.UUID | None
    attempts: list[StepAttemptRead] = Field(
        default_factory=list,
        description="SEND_MESSAGE: every delivery attempt of this step (retries included), "
        "oldest first; empty for other steps.")
    handled_error: bool = Field(
        False, description="True for an INTEGRATION step whose request failed and that took "
                           "its `on_error` edge: its status stays COMPLETED (the run went on) "
                           "but it did not succeed.")
    delivery_status: str | None = Field(
        None, description="SEND_MESSAGE: the status of its delivery attempt now (the latest "
                          "retry's; DELIVERED, BOUNCED, ... as reported after the send). "
                          "`output.status` says the same; the run's later nodes saw the "
                          "status at send time.")

    @classmethod
    def from_step(cls, step: RunStep, attempts: list[DeliveryAttempt] | None = None) -> StepRead:
        attempt = (run_view.current_attempt(step, attempts or [])
                   if step.node_type == "SEND_MESSAGE" else None)
        return cls(
            seq=step.seq, node_id=step.node_id, type=step.node_type, status=step.status,
            started_at=step.started_at, finished_at=step.finished_at,
            duration_ms=step.duration_ms, branch=step.branch,
            output=run_view.shown_output(step, attempt),
            error=step.error, request=step.request, response=step.response,
            delivery_attempt_id=attempt.id if attempt is not None else step.delivery_attempt_id,
            attempts=[StepAttemptRead(id=a.id, status=a.status, attempt_number=a.attempt_number)
                      for a in attempts or ()],
            handled_error=run_view.handled_error(step),
            delivery_status=attempt.status if attempt is not None else None,
        )


Relation = Literal["child", "retry", "parent", "original"]


class LinkedRunRead(BaseModel):
    id: uuid.UUID
    workflow: str
    status: RunStatus
    created_at: datetime
    relation: Relation = Field(
        description="child: started by this run's TRIGGER_WORKFLOW; retry: a retry of this "
        "run; parent: started this run; original: the run this one retries."
    )

    @classmethod
    def build(cls, row: RunRow, relation: Relation) -> LinkedRunRead:
        return cls(id=row.run.id, workflow=row.workflow_key, status=row.run.status,
                   created_at=row.run.created_at, relation=relation)


class RunDetail(RunRead):
    event: dict[str, Any] = Field(description="The trigger payload the run started with.")
    steps: list[StepRead]
    children: list[LinkedRunRead] = Field(
        description="Runs this one started (child) and retries of it (retry), oldest first."
    )
    parent: LinkedRunRead | None = Field(
        description="The run that started this one (see parent_run_id)."
    )
    original: LinkedRunRead | None = Field(
        description="The run this one retries (see retry_of)."
    )

    @classmethod
    def from_detail(cls, detail: run_service.Detail) -> RunDetail:
        return cls(
            **_run_fields(detail.row),
            event=detail.row.run.trigger_payload or {},
            steps=[StepRead.from_step(s, detail.attempts.get(s.seq)) for s in detail.steps],
            children=[LinkedRunRead.build(link.row, "retry" if link.relation == "retry"
                                          else "child") for link in detail.linked],
            parent=LinkedRunRead.build(detail.parent, "parent") if detail.parent else None,
            original=(LinkedRunRead.build(detail.original, "original")
                      if detail.original else None),
        )


class RunCounts(BaseModel):
    """Runs per status chip under every filter except `status`."""

    ALL: int
    RUNNING: int = Field(description="PENDING and RUNNING runs.")
    COMPLETED: int
    FAILED: int
    CANCELED: int


class RunList(BaseModel):
    items: list[RunRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
    counts: RunCounts

    @classmethod
    def from_page(cls, page: run_service.RunPage) -> RunList:
        return cls(items=[RunRead.from_row(r) for r in page.rows], next_cursor=page.next_cursor,
                   counts=RunCounts(**page.counts))


# --- secrets --------------------------------------------------------------------------


class SecretWrite(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"value": "crm-token-value"}]})

    value: Text = Field(min_length=1, max_length=64 * 1024)


class SecretRead(BaseModel):
    name: str
    updated_at: datetime

    @classmethod
    def from_info(cls, info: SecretInfo) -> SecretRead:
        return cls(name=info.name, updated_at=info.updated_at)


class SecretList(BaseModel):
    items: list[SecretRead]


# --- contacts -------------------------------------------------------------------------


class ContactUpsert(BaseModel):
    """Identifiers of one contact and attributes to merge into it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"email": "ada@example.com", "phone": "+14155550123",
         "attributes": {"first_name": "Ada", "plan": "pro"}}]})

    email: Text | None = Field(default=None, max_length=320, description="Stored lower-cased.")
    phone: Text | None = Field(
        default=None, max_length=64,
        description="Any usual spelling; stored as E.164 (+14155550123). Without a country "
        "code it is read in the server's default phone region, if one is set.",
    )
    external_id: Text | None = Field(default=None, max_length=200,
                                     description="Your system's id for this person.")
    attributes: JsonObject | None = Field(
        default=None,
        description="Merged into the contact's attributes: given keys replace, a null value "
        "removes the key, other keys are kept.",
    )


class ContactRead(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None
    external_id: str | None
    attributes: dict[str, Any]
    suppressed: dict[str, Any] = Field(
        description="Channels this contact gets no messages on, with the reason."
    )
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None = Field(
        default=None, description="When its personal data was erased; the rest is a tombstone.")

    @classmethod
    def from_contact(cls, contact: Contact) -> ContactRead:
        return cls(id=contact.id, email=contact.email, phone=contact.phone,
                   external_id=contact.external_id, attributes=contact.attributes or {},
                   suppressed=contact.suppressed or {}, created_at=contact.created_at,
                   updated_at=contact.updated_at, erased_at=contact.erased_at)


class ContactList(BaseModel):
    items: list[ContactRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class ContactDetail(ContactRead):
    runs: list[RunRead] = Field(
        description="The newest 20 runs; /api/v1/runs?contact=<id> pages through all of them."
    )
