"""Drive the real worker code in-process, for tests that need runs to move."""

from __future__ import annotations

from relayflow.services import walk
from relayflow.services.runtime import Runtime


def drain(runtime: Runtime, *, max_iterations: int = 1000, worker: str = "test-worker") -> int:
    """Advance until nothing is due; returns how many claims were made."""
    total = 0
    for _ in range(max_iterations):
        claimed = walk.advance(runtime, worker=worker, limit=64, lease_seconds=30)
        if claimed == 0:
            return total
        total += claimed
    raise AssertionError("runs still due after max_iterations")
