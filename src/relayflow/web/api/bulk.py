"""/api/v1/bulk-operations: retry or cancel every run a filter matches (DESIGN §8.2)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from relayflow.services import bulk
from relayflow.storage.models import BulkOperation
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import RunRead
from relayflow.web.deps import (
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    WriterDep,
    wake_worker_after_commit,
)

router = APIRouter(prefix="/bulk-operations", tags=["bulk operations"])


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: str | None = Field(None, description="Run statuses, comma-separated.")
    workflow: str | None = Field(None, description="A workflow key.")
    contact: str | None = Field(None, description="A contact's email, phone or id.")
    range: Literal["24h", "7d", "30d"] | None = Field(None, description="Created in the last…")
    from_: datetime | None = Field(None, alias="from", description="Created at or after.")
    to: datetime | None = Field(None, description="Created before.")
    fingerprint: str | None = Field(None, description="A cause of failure "
                                                      "(GET /api/v1/failures).")
    q: str | None = Field(None, description="Text search (not available yet: refused).")
    ids: list[str] | None = Field(None, description="These runs (at most 10,000).")

    def as_dict(self) -> dict[str, Any]:
        values = self.model_dump(by_alias=True, exclude_none=True)
        for name in ("from", "to"):
            if name in values:
                values[name] = values[name].isoformat()
        return values


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"action": "retry", "filter": {"status": "FAILED", "fingerprint": "3f9c1e7a0b2d4c58"},
         "version": "current", "reason": "the CRM token was renewed", "dry_run": True},
        {"action": "cancel", "filter": {"workflow": "nurture", "status": "RUNNING"},
         "reason": "wrong audience"}]})

    action: Literal["retry", "cancel"]
    filter: BulkFilter
    version: Literal["original", "current"] | None = Field(
        None, description="Retries only: the version each run ran (default) or the "
                          "workflow's current one.")
    reason: str = Field("", max_length=2000, description="Shown on the operation, and on "
                                                         "each run it cancels.")
    dry_run: bool = Field(False, description="Answer what acting would do; write nothing.")
    rate: float = Field(bulk.DEFAULT_RATE, gt=0, le=1000, description="Runs a second, at "
                                                                      "most.")


class Effects(BaseModel):
    messages: int = Field(description="SEND_MESSAGE steps the retried paths may run again, "
                                      "at most.")
    integrations: int = Field(description="INTEGRATION steps, likewise.")
    loops: bool = Field(description="A path loops through a WAIT: each pass may repeat "
                                    "them.")


class BulkPreviewRead(BaseModel):
    count: int = Field(description="Runs the filter matches now.")
    acting: int = Field(description="Of those, the runs that would be retried or canceled.")
    skipped: dict[str, int] = Field(description="The others, by the reason they would be "
                                                "skipped.")
    sample: list[RunRead] = Field(description="Up to 20 of the runs, newest first.")
    effects: Effects
    too_many: bool = Field(description=f"More than {bulk.MAX_RUNS:,} runs: narrow the filter.")


class BulkOperationRead(BaseModel):
    id: uuid.UUID
    action: Literal["retry", "cancel"]
    version: str | None
    status: Literal["RUNNING", "COMPLETED", "CANCELED"]
    filter: dict[str, Any]
    reason: str
    actor: str
    rate: float
    total: int = Field(description="Runs frozen when the operation was made.")
    done: int
    skipped: int
    failed: int
    created_at: datetime
    finished_at: datetime | None
    skip_reasons: dict[str, int] | None = Field(
        None, description="Skipped and failed runs by reason (on GET of one operation).")

    @classmethod
    def build(cls, operation: BulkOperation,
              reasons: dict[str, int] | None = None) -> BulkOperationRead:
        return cls(id=operation.id, action=operation.action,
                   version=operation.version, status=operation.status,
                   filter=operation.filter, reason=operation.reason, actor=operation.actor,
                   rate=operation.rate, total=operation.total, done=operation.done,
                   skipped=operation.skipped, failed=operation.failed,
                   created_at=operation.created_at, finished_at=operation.finished_at,
                   skip_reasons=reasons)


class BulkOperationList(BaseModel):
    items: list[BulkOperationRead]


@router.post(
    "",
    name="bulk:create",
    summary="Retry or cancel every run a filter matches (dry_run first)",
    description="With `dry_run: true`: 200 and what acting would do, nothing written. "
                "Otherwise 202 and the operation: its runs are frozen now and workers act on "
                "them at `rate` runs a second; follow it with GET /bulk-operations/{id}.",
    response_model=BulkOperationRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": BulkPreviewRead, "description": "The dry run."},
               **errors(401, 403, 422)},
)
def create_operation(body: BulkRequest, principal: WriterDep, session: SessionDep,
                     runtime: RuntimeDep, settings: SettingsDep) -> Any:
    request = bulk.spec(action=body.action, filter=body.filter.as_dict(),
                        version=body.version, reason=body.reason)
    if body.dry_run:
        seen = bulk.preview(session, workspace_id=principal.workspace_id, request=request,
                            now=runtime.clock(), phone_region=settings.default_phone_region)
        preview = BulkPreviewRead(
            count=seen.count, acting=seen.acting, skipped=seen.skipped,
            sample=[RunRead.from_row(row) for row in seen.sample],
            effects=Effects(messages=seen.effects.messages,
                            integrations=seen.effects.integrations, loops=seen.effects.loops),
            too_many=seen.too_many)
        return JSONResponse(preview.model_dump(mode="json"), status_code=status.HTTP_200_OK)
    operation = bulk.create(session, workspace_id=principal.workspace_id, request=request,
                            actor=principal.actor, now=runtime.clock(), rate=body.rate,
                            phone_region=settings.default_phone_region)
    wake_worker_after_commit(session)
    return BulkOperationRead.build(operation)


@router.get("", name="bulk:list", summary="Recent bulk operations, newest first",
            response_model=BulkOperationList, responses=errors(401, 422))
def list_operations(principal: PrincipalDep, session: SessionDep) -> BulkOperationList:
    return BulkOperationList(items=[BulkOperationRead.build(o) for o in bulk.recent(
        session, workspace_id=principal.workspace_id)])


@router.get("/{operation_id}", name="bulk:detail", summary="A bulk operation and its progress",
            response_model=BulkOperationRead, responses=errors(401, 404, 422))
def get_operation(operation_id: str, principal: PrincipalDep,
                  session: SessionDep) -> BulkOperationRead:
    operation = bulk.get(session, workspace_id=principal.workspace_id,
                         operation_id=operation_id)
    return BulkOperationRead.build(operation, bulk.skip_reasons(session, operation=operation))


@router.post("/{operation_id}/cancel", name="bulk:cancel",
             summary="Stop a bulk operation (what it did stays done)",
             response_model=BulkOperationRead, responses=errors(401, 403, 404, 409, 422))
def cancel_operation(operation_id: str, principal: WriterDep, session: SessionDep,
                     runtime: RuntimeDep) -> BulkOperationRead:
    operation = bulk.cancel(session, workspace_id=principal.workspace_id,
                            operation_id=operation_id, actor=principal.actor,
                            now=runtime.clock())
    return BulkOperationRead.build(operation)
