"""Named crash points for fault-injection tests.

`RELAYFLOW_FAULT=after_effect` (optionally `after_effect:3` for the third time) makes the
worker process kill itself with SIGKILL at that point, exactly as a power cut would.
Unset, each check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_claim", "after_intent", "after_effect", "after_commit")
_spec = os.environ.get("RELAYFLOW_FAULT", "")
_point, _, _nth = _spec.partition(":")
_remaining = int(_nth or 1)


def crash_point(name: str) -> None:
    global _remaining
    if not _point or name != _point:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
