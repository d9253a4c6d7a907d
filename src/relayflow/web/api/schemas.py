"""Request and response bodies of the JSON API, built from service results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from relayflow.engine.outcome import RunStatus, StepStatus
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.secret import SecretInfo
from relayflow.storage.models import RunStep, Workflow, WorkflowVersion
from relayflow.storage.repositories.run import RunRow

WorkflowStatus = Literal["DRAFT", "ACTIVE", "INACTIVE"]


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


class WorkflowDeactivated(WorkflowRead):
    canceled_runs: int


class WorkflowVersionRead(BaseModel):
    number: int
    created_at: datetime


class WorkflowDetail(WorkflowRead):
    versions: list[WorkflowVersionRead]
    definition: dict[str, Any]

    @classmethod
    def from_detail(
        cls, detail: workflow_service.Detail, *, base_url: str
    ) -> WorkflowDetail:
        return cls(
            **_workflow_fields(detail.workflow, detail.current, base_url=base_url),
            versions=[WorkflowVersionRead(number=v.number, created_at=v.created_at)
                      for v in detail.versions],
            definition=detail.current.definition,
        )


class WorkflowList(BaseModel):
    items: list[WorkflowRead]


# --- runs -----------------------------------------------------------------------------


class ContactSpec(BaseModel):
    """Who the run is for: an existing contact's id, or an address to find or create."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    email: str | None = None
    phone: str | None = None
    external_id: str | None = None
    attributes: dict[str, Any] | None = Field(
        default=None, description="Attributes for a contact created by this call."
    )


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: ContactSpec | None = None
    event: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class RunEnqueued(BaseModel):
    id: uuid.UUID
    status: RunStatus
    duplicate: bool


class ContactRef(BaseModel):
    id: uuid.UUID
    email: str | None
    phone: str | None


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
    waiting_until: datetime | None
    error: str | None
    parent_run_id: uuid.UUID | None
    retry_of: uuid.UUID | None
    duplicates_ignored: int

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
        "waiting_until": run.wake_at if run.status == "RUNNING" else None,
        "error": run.error,
        "parent_run_id": run.parent_run_id,
        "retry_of": run.retry_of,
        "duplicates_ignored": run.duplicates_ignored,
    }


class RunCanceled(RunRead):
    cancel_requested: bool = Field(
        description="True when a worker holds the run: it stops at the next step boundary."
    )

    @classmethod
    def from_canceled(cls, row: RunRow) -> RunCanceled:
        return cls(**_run_fields(row), cancel_requested=row.run.status != "CANCELED")


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

    @classmethod
    def from_step(cls, step: RunStep) -> StepRead:
        return cls(
            seq=step.seq, node_id=step.node_id, type=step.node_type, status=step.status,
            started_at=step.started_at, finished_at=step.finished_at,
            duration_ms=step.duration_ms, branch=step.branch, output=step.output or {},
            error=step.error, request=step.request, response=step.response,
            delivery_attempt_id=step.delivery_attempt_id,
        )


class LinkedRunRead(BaseModel):
    id: uuid.UUID
    workflow: str
    status: RunStatus
    relation: Literal["child", "retry"]


class RunDetail(RunRead):
    event: dict[str, Any] = Field(description="The trigger payload the run started with.")
    steps: list[StepRead]
    children: list[LinkedRunRead]

    @classmethod
    def from_detail(cls, detail: run_service.Detail) -> RunDetail:
        return cls(
            **_run_fields(detail.row),
            event=detail.row.run.trigger_payload or {},
            steps=[StepRead.from_step(s) for s in detail.steps],
            children=[
                LinkedRunRead(id=link.row.run.id, workflow=link.row.workflow_key,
                              status=link.row.run.status, relation=link.relation)
                for link in detail.linked
            ],
        )


class RunList(BaseModel):
    items: list[RunRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")

    @classmethod
    def from_page(cls, page: run_service.RunPage) -> RunList:
        return cls(items=[RunRead.from_row(r) for r in page.rows], next_cursor=page.next_cursor)


# --- secrets --------------------------------------------------------------------------


class SecretWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=64 * 1024)


class SecretRead(BaseModel):
    name: str
    updated_at: datetime

    @classmethod
    def from_info(cls, info: SecretInfo) -> SecretRead:
        return cls(name=info.name, updated_at=info.updated_at)


class SecretList(BaseModel):
    items: list[SecretRead]
