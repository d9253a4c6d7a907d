"""Named fault points for fault-injection tests.

`RELAYFLOW_FAULT=after_effect` (optionally `after_effect:3` for the third time) makes the
worker process kill itself with SIGKILL at that point, exactly as a power cut would.
`RELAYFLOW_FAULT=refuse_write:NODE` makes every write of a step of node NODE fail, as a
value the database refuses would: how one run's bad write is contained.
Unset, each check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

# The points of a run's walk, which every worker passes while it has runs to walk.
POINTS = ("after_claim", "after_intent", "after_effect", "after_commit")
# A bulk operation's (services/bulk.py): inside a batch's transaction, and after its commit.
BULK_POINTS = ("bulk_acted", "bulk_committed")
_spec = os.environ.get("RELAYFLOW_FAULT", "")
_point, _, _arg = _spec.partition(":")
_remaining = int(_arg or 1) if _point in POINTS + BULK_POINTS else 0


def crash_point(name: str) -> None:
    global _remaining
    if not _point or name != _point:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)


class InjectedFault(RuntimeError):
    """A fault injected by RELAYFLOW_FAULT (tests only)."""


def refuse_write(node_ids: Iterable[str]) -> None:
    if _point == "refuse_write" and _arg in node_ids:
        raise InjectedFault(f"writing a step of node {_arg!r} refused (RELAYFLOW_FAULT)")
