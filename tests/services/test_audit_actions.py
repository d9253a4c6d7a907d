"""Every audit action the code records is described in services.audit.ACTIONS (the API's
filter documentation and the audit log page are built from it)."""

from __future__ import annotations

import re
from pathlib import Path

import relayflow
from relayflow.services import audit

SOURCE = Path(relayflow.__file__).parent


def test_every_recorded_action_is_described() -> None:
    recorded = set()
    for path in SOURCE.rglob("*.py"):
        recorded |= set(re.findall(r'action="([a-z_]+\.[a-z_]+)"', path.read_text()))
    assert len(recorded) >= 10  # the search itself works
    assert recorded - set(audit.ACTIONS) == set()
