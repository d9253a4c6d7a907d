from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from relayflow.services import run as run_service
from relayflow.web.api.schemas import RunCanceled, RunDetail, RunList
from relayflow.web.deps import PrincipalDep, RuntimeDep, SessionDep, WriterDep

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get("", name="runs:list", summary="List runs, newest first", response_model=RunList)
def list_runs(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[
        str | None,
        Query(description="A run status, or several separated by commas (RUNNING,FAILED)."),
    ] = None,
    workflow: Annotated[str | None, Query(description="A workflow key.")] = None,
    limit: Annotated[int, Query(ge=1, le=run_service.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> RunList:
    page = run_service.search(
        session, workspace_id=principal.workspace_id, status=status, workflow_key=workflow,
        limit=limit, cursor=cursor,
    )
    return RunList.from_page(page)


@router.get(
    "/{run_id}",
    name="runs:detail",
    summary="Get a run with its steps",
    response_model=RunDetail,
)
def get_run(run_id: str, session: SessionDep, principal: PrincipalDep) -> RunDetail:
    # run_id is a plain string so a malformed id is answered 404 like any unknown one.
    detail = run_service.detail(session, workspace_id=principal.workspace_id, run_id=run_id)
    return RunDetail.from_detail(detail)


@router.post(
    "/{run_id}/cancel",
    name="runs:cancel",
    summary="Cancel a run",
    response_model=RunCanceled,
)
def cancel_run(
    run_id: str, principal: WriterDep, session: SessionDep, runtime: RuntimeDep
) -> RunCanceled:
    run = run_service.cancel(
        session, workspace_id=principal.workspace_id, run_id=run_id, actor=principal.actor,
        now=runtime.clock(),
    )
    row = run_service.get_row(session, workspace_id=principal.workspace_id, run_id=run.id)
    return RunCanceled.from_canceled(row)
