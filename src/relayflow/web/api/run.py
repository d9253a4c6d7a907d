from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from relayflow.services import run as run_service
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import (
    RunCancel,
    RunCanceled,
    RunDetail,
    RunList,
    RunRetried,
    RunRetry,
    Text,
)
from relayflow.web.deps import (
    HistorySessionDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    SettingsDep,
    WriterDep,
    wake_worker_after_commit,
)

router = APIRouter(prefix="/runs", tags=["runs"])

_LIST_HELP = """Newest first, in pages of `limit` runs; `next_cursor` continues with older ones,
and no run is skipped or repeated while new ones arrive.

`counts` holds the status chip counts: runs per status under every filter except `status`
(RUNNING counts PENDING and RUNNING runs). A workflow key or an address that matches
nothing gives an empty page, not an error."""


@router.get(
    "",
    name="runs:list",
    summary="List runs, newest first, with status counts",
    description=_LIST_HELP,
    response_model=RunList,
    responses=errors(401, 422),
)
def list_runs(
    session: HistorySessionDep,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
    status: Annotated[
        Text | None,
        Query(description="A run status, or several separated by commas (PENDING,RUNNING)."),
    ] = None,
    workflow: Annotated[Text | None, Query(description="A workflow key.")] = None,
    contact: Annotated[
        Text | None,
        Query(description="A contact's email or phone number (any usual spelling), or id."),
    ] = None,
    range_: Annotated[
        Literal["24h", "7d", "30d"] | None,
        Query(alias="range", description="Runs created in the last 24 hours, 7 or 30 days. "
                                         "Not together with from/to."),
    ] = None,
    created_from: Annotated[
        datetime | None,
        Query(alias="from", description="ISO 8601; runs created at or after it. "
                                        "Without a UTC offset the time is UTC."),
    ] = None,
    created_to: Annotated[
        datetime | None,
        Query(alias="to", description="ISO 8601; runs created before it. "
                                      "Without a UTC offset the time is UTC."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=run_service.MAX_PAGE)] = 50,
    fingerprint: Annotated[
        Text | None,
        Query(description="A cause of failure, as GET /api/v1/failures gives it: its "
                          "FAILED runs."),
    ] = None,
    q: Annotated[
        Text | None,
        Query(description="Search: words of the trigger payload, captured fields, idempotency "
                          "key or error (`ORD-1042`), `key:value` (`customer.tier:gold`), "
                          "the start of a run id; every term must match.",
              examples=["customer.tier:gold ORD-1042"]),
    ] = None,
    cursor: Annotated[Text | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> RunList:
    query = run_service.RunQuery(status=status, workflow=workflow, contact=contact, range=range_,
                                 created_from=created_from, created_to=created_to,
                                 fingerprint=fingerprint, q=q)
    page = run_service.search(
        session, workspace_id=principal.workspace_id, query=query, limit=limit, cursor=cursor,
        now=runtime.clock(), phone_region=settings.default_phone_region,
    )
    return RunList.from_page(page)


@router.get(
    "/{run_id}",
    name="runs:detail",
    summary="Get a run with its steps and linked runs",
    response_model=RunDetail,
    responses=errors(401, 404, 422),
)
def get_run(run_id: str, session: SessionDep, principal: PrincipalDep) -> RunDetail:
    # run_id is a plain string so a malformed id is answered 404 like any unknown one.
    detail = run_service.detail(session, workspace_id=principal.workspace_id, run_id=run_id)
    return RunDetail.from_detail(detail)


@router.post(
    "/{run_id}/cancel",
    name="runs:cancel",
    summary="Cancel a PENDING or RUNNING run",
    description="The run records who canceled it (`canceled_by`: this API key, as "
                "`api-key:<prefix>`) and the `reason` given, if any (`cancel_reason`).",
    response_model=RunCanceled,
    responses=errors(401, 403, 404, 409, 422),
)
def cancel_run(
    run_id: str, principal: WriterDep, session: SessionDep, runtime: RuntimeDep,
    body: RunCancel | None = None,
) -> RunCanceled:
    run = run_service.cancel(
        session, workspace_id=principal.workspace_id, run_id=run_id, actor=principal.actor,
        now=runtime.clock(), reason=(body.reason or "") if body is not None else "",
    )
    row = run_service.get_row(session, workspace_id=principal.workspace_id, run_id=run.id)
    return RunCanceled.from_canceled(row)


@router.post(
    "/{run_id}/retry",
    name="runs:retry",
    summary="Retry a finished run",
    description="Opens a new run for the same contact and trigger payload, with `retry_of` "
                "set to this run, on the version this run ran (`version: original`, the "
                "default) or on the workflow's current one (`current`). Only COMPLETED, "
                "FAILED or CANCELED runs (409 otherwise). Works on a deactivated workflow too.",
    response_model=RunRetried,
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(401, 403, 404, 409, 422),
)
def retry_run(
    run_id: str, principal: WriterDep, session: SessionDep, runtime: RuntimeDep,
    body: RunRetry | None = None,
) -> RunRetried:
    run = run_service.retry(
        session, workspace_id=principal.workspace_id, run_id=run_id, actor=principal.actor,
        now=runtime.clock(), version=(body or RunRetry()).version,
    )
    wake_worker_after_commit(session)
    assert run.retry_of is not None
    return RunRetried(id=run.id, status=run.status, retry_of=run.retry_of)
