"""GET /api/v1/failures: failed runs and attempts grouped by cause (DESIGN §8.1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from relayflow.services import failures
from relayflow.services import run as run_service
from relayflow.storage.repositories.failure import Group
from relayflow.web.api.responses import errors
from relayflow.web.api.schemas import Text
from relayflow.web.deps import HistorySessionDep, PrincipalDep, RuntimeDep

router = APIRouter(prefix="/failures", tags=["failures"])


class FailureGroupRead(BaseModel):
    fingerprint: str = Field(description="Filter runs by it: /api/v1/runs?fingerprint=…")
    kind: Literal["run", "delivery"] = Field(
        description="`run`: FAILED runs; `delivery`: FAILED or BOUNCED delivery attempts.")
    workflow: str | None = Field(description="The workflow's key (null once deleted).")
    node_id: str | None
    node_type: str | None
    error_class: str = Field(description="An exception's type, `HTTP 503`, `SMTP 550`, "
                                         "`bounce hard`, `StopError`, …")
    pattern: str = Field(description="The error with what varies from one failure to the "
                                     "next (addresses, ids, numbers, quoted values) replaced "
                                     "by placeholders.")
    sample_error: str = Field(description="The error of the first failure of this cause.")
    count: int = Field(description="Failures of this cause in the range.")
    unresolved: int = Field(description="Those not made good since: no retry of the run "
                                        "COMPLETED, no retry or resend of the attempt was sent.")
    first_seen: datetime
    last_seen: datetime
    sparkline: list[int] = Field(description="Failures in each bar of `sparkline_hours` from "
                                             "`sparkline_start`, oldest first; the first "
                                             "and the last cut by the range.")

    @classmethod
    def from_group(cls, group: Group) -> FailureGroupRead:
        assert group.first_seen is not None
        assert group.last_seen is not None
        return cls(fingerprint=group.fingerprint, kind=group.kind,
                   workflow=group.workflow_key, node_id=group.node_id,
                   node_type=group.node_type, error_class=group.error_class,
                   pattern=group.pattern, sample_error=group.sample_error, count=group.count,
                   unresolved=group.unresolved, first_seen=group.first_seen,
                   last_seen=group.last_seen, sparkline=group.buckets)


class FailureList(BaseModel):
    items: list[FailureGroupRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    range_start: datetime = Field(description="The range counted: from this time…")
    range_end: datetime = Field(description="…to this one (now, unless `to` is earlier).")
    sparkline_start: datetime = Field(description="Where the first bar of each sparkline "
                                                  "starts (on or before `range_start`).")
    sparkline_hours: int = Field(description="The hours each bar covers: the fewest whole "
                                             "hours that keep a sparkline to about 30 bars.")


@router.get(
    "",
    name="failures:list",
    summary="Failures grouped by cause, most recently seen first",
    description="One item per cause of failure (its `fingerprint`) with a failure in the "
                "range (the last 7 days unless `range` or `from`/`to` say otherwise).",
    response_model=FailureList,
    responses=errors(401, 422),
)
def list_failures(
    session: HistorySessionDep,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    kind: Annotated[Literal["run", "delivery"] | None,
                    Query(description="Runs or delivery attempts; both when absent.")] = None,
    workflow: Annotated[Text | None, Query(description="A workflow key.")] = None,
    range_: Annotated[Literal["24h", "7d", "30d"] | None,
                      Query(alias="range", description="Not together with from/to.")] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=run_service.MAX_PAGE)] = 50,
    cursor: Annotated[Text | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> FailureList:
    query = failures.FailureQuery(kind=kind, workflow=workflow, range=range_,
                                  created_from=created_from, created_to=created_to)
    page = failures.search(session, workspace_id=principal.workspace_id, query=query,
                           limit=limit, cursor=cursor, now=runtime.clock())
    return FailureList(items=[FailureGroupRead.from_group(g) for g in page.groups],
                       next_cursor=page.next_cursor, range_start=page.start,
                       range_end=page.end, sparkline_start=page.bars.origin,
                       sparkline_hours=int(page.bars.width.total_seconds()) // 3600)


__all__ = ["router"]
