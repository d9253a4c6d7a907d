"""The seeded history is what tests/support/seed.py says it is."""

from __future__ import annotations

from collections import Counter

from relayflow.services.runtime import Runtime
from tests.support.flows import attempts_of, run_of
from tests.support.seed import seed


class TestSeed:
    def test_statuses_of_runs_and_attempts(self, runtime: Runtime, workspace, http_server):
        seeded = seed(runtime, workspace.id, http_url=http_server.url)
        statuses = {label: run_of(runtime, run_id).status
                    for label, run_id in seeded.runs.items()}
        assert Counter(statuses.values()) == {"COMPLETED": 6, "FAILED": 2, "RUNNING": 2,
                                              "CANCELED": 1}
        assert statuses["payment_linus"] == "FAILED"
        assert statuses["nurture_grace"] == "CANCELED"
        delivered = {label: attempts_of(runtime, seeded.runs[label])[0].status
                     for label in seeded.attempts}
        assert delivered == {"welcome_ada_old": "SENT", "welcome_grace": "BOUNCED",
                             "welcome_ada_2h": "SENT", "welcome_ada_1h": "DELIVERED",
                             "welcome_linus": "SUPPRESSED"}
