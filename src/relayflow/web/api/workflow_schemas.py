"""What the workflow endpoints answer beyond schemas.py: warnings about a definition and
the progress of the background cancel a deactivation starts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from relayflow.services import workflow as workflow_service
from relayflow.storage.models import Workflow
from relayflow.web.api.schemas import WorkflowDetail, WorkflowRead, WorkflowSaved

_WARNINGS: list[str] = Field(default_factory=list, description=(
    "What is allowed but worth knowing, e.g. that the workflow can start itself through "
    "TRIGGER_WORKFLOW nodes (directly or through other workflows)."))


class Canceling(BaseModel):
    """A deactivation's cancel of the workflow's in-flight runs, under way in the
    background: `canceled` of `to_cancel` so far."""

    to_cancel: int
    canceled: int

    @classmethod
    def of(cls, progress: workflow_service.Cancellation | None) -> Canceling | None:
        if progress is None:
            return None
        return cls(to_cancel=progress.to_cancel, canceled=progress.canceled)


_CANCELING = Field(default=None, description=(
    "Present while the runs of a deactivation are still being canceled in the background."))


class WorkflowSavedRead(WorkflowSaved):
    warnings: list[str] = _WARNINGS


class WorkflowActivated(WorkflowRead):
    warnings: list[str] = _WARNINGS


class WorkflowDetailRead(WorkflowDetail):
    warnings: list[str] = _WARNINGS
    canceling: Canceling | None = _CANCELING

    @classmethod
    def from_service(cls, detail: workflow_service.Detail, *, base_url: str,
                     now: datetime) -> WorkflowDetailRead:
        base = WorkflowDetail.from_detail(detail, base_url=base_url, now=now)
        return cls(**base.model_dump(), warnings=list(detail.warnings),
                   canceling=Canceling.of(detail.canceling))


class WorkflowDeactivation(WorkflowRead):
    to_cancel: int = Field(description="In-flight runs (pending or running) the deactivation "
                                       "cancels: the first batch at once, the rest in the "
                                       "background.")
    canceled: int = Field(description="Of those, how many were canceled before this answer.")
    canceled_runs: int = Field(description="Same as to_cancel (kept for older clients).")

    @classmethod
    def of(cls, read: WorkflowRead, workflow: Workflow, canceled: int) -> WorkflowDeactivation:
        total = workflow.cancel_total
        return cls(**read.model_dump(), to_cancel=total, canceled=canceled, canceled_runs=total)
