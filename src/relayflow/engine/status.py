"""Every status word of runs, steps and delivery attempts, in one place."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class StepStatus(StrEnum):
    RUNNING = "RUNNING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class DeliveryStatus(StrEnum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    BOUNCED = "BOUNCED"
    FAILED = "FAILED"
    SUPPRESSED = "SUPPRESSED"


# A run in one of these never changes again.
TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)
# A run a worker still has to walk (its job row exists).
IN_FLIGHT = (RunStatus.PENDING, RunStatus.RUNNING)
# The status chips of run lists: each counts these statuses (Running also counts runs not
# yet started).
CHIPS: dict[str, tuple[RunStatus, ...]] = {
    "RUNNING": IN_FLIGHT,
    "COMPLETED": (RunStatus.COMPLETED,),
    "FAILED": (RunStatus.FAILED,),
    "CANCELED": (RunStatus.CANCELED,),
}

__all__ = ["CHIPS", "IN_FLIGHT", "TERMINAL", "DeliveryStatus", "RunStatus", "StepStatus"]
