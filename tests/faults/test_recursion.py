"""Workflows that trigger themselves stop at the caps instead of flooding the database.

A workflow whose two TRIGGER_WORKFLOW nodes both start the workflow itself (fan-out 2) used
to double its runs at every hop, without end: measured on SQLite before the caps, a few
seconds of draining made thousands of runs and never ran dry. Now a run's depth of upstream
triggers is capped (Runtime.max_trigger_depth) and so is the number of child runs one run
may start (Runtime.max_child_runs); over a cap the TRIGGER_WORKFLOW step fails with the cap
and its setting named, and the run fails as any failed step fails it.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import select

from relayflow.services import run as run_service
from relayflow.services import walk
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import RunStep, WorkflowRun
from tests.support.flows import install, start

DRAIN_SECONDS = 30.0  # far above what the capped runs need; the uncapped ones never finish


def _flow(key: str, nodes: dict[str, Any], start_node: str = "first") -> dict[str, Any]:
    return {"key": key, "trigger": {"type": "manual"}, "start": start_node, "nodes": nodes}


def _fan_out(key: str, targets: tuple[str, ...]) -> dict[str, Any]:
    """One TRIGGER_WORKFLOW node per target, in a row, then END."""
    nodes: dict[str, Any] = {}
    names = [f"t{i}" for i in range(len(targets))]
    for i, (name, target) in enumerate(zip(names, targets, strict=True)):
        nodes[name] = {"type": "TRIGGER_WORKFLOW", "workflow": target,
                       "next": names[i + 1] if i + 1 < len(names) else "done"}
    nodes["done"] = {"type": "END"}
    return _flow(key, nodes, start_node=names[0])


def drain_until_quiet(runtime: Runtime, *, seconds: float = DRAIN_SECONDS) -> bool:
    """Advance until nothing is due (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if walk.advance(runtime, worker="w", limit=64, lease_seconds=30) == 0:
            return True
    return False


def _runs(runtime: Runtime) -> list[WorkflowRun]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(WorkflowRun)))


def _failed_steps(runtime: Runtime) -> list[RunStep]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(RunStep).where(RunStep.status == "FAILED")))


class TestSelfTrigger:
    def test_fan_out_of_two_stops_at_the_depth_cap(self, runtime, workspace):
        runtime.max_trigger_depth = 4
        install(runtime, workspace.id, _fan_out("loop", ("loop", "loop")))
        start(runtime, workspace.id, "loop", email="r@example.com")

        assert drain_until_quiet(runtime), f"still walking after {len(_runs(runtime))} runs"

        runs = _runs(runtime)
        # depths 0..4: 1 + 2 + 4 + 8 + 16 runs; a depth-4 run may start no child.
        assert len(runs) == 31
        assert Counter(r.trigger_depth for r in runs) == {0: 1, 1: 2, 2: 4, 3: 8, 4: 16}
        assert Counter(r.status for r in runs) == {"COMPLETED": 15, "FAILED": 16}
        failed = _failed_steps(runtime)
        assert len(failed) == 16
        assert {s.node_id for s in failed} == {"t0"}
        for step in failed:
            assert step.node_type == "TRIGGER_WORKFLOW"
            assert "RELAYFLOW_MAX_TRIGGER_DEPTH" in (step.error or "")
            assert "at most 4" in (step.error or "")
        assert {r.error for r in runs if r.status == "FAILED"} == {failed[0].error}

    def test_default_caps_bound_a_fan_out_of_two(self, runtime, workspace):
        assert runtime.max_trigger_depth == 10
        install(runtime, workspace.id, _fan_out("loop", ("loop", "loop")))
        start(runtime, workspace.id, "loop", email="r@example.com")

        assert drain_until_quiet(runtime), f"still walking after {len(_runs(runtime))} runs"

        runs = _runs(runtime)
        assert len(runs) == 2 ** 11 - 1  # 2047: depths 0..10, then every branch stops
        assert max(r.trigger_depth for r in runs) == 10
        assert sum(r.status == "FAILED" for r in runs) == 2 ** 10


class TestMutualTrigger:
    def test_a_to_b_to_a_stops_at_the_depth_cap(self, runtime, workspace):
        install(runtime, workspace.id, _flow("b", {"first": {"type": "END"}}), activate=False)
        install(runtime, workspace.id, _fan_out("a", ("b",)))
        install(runtime, workspace.id, _fan_out("b", ("a",)))
        start(runtime, workspace.id, "a", email="ab@example.com")

        assert drain_until_quiet(runtime), f"still walking after {len(_runs(runtime))} runs"

        runs = sorted(_runs(runtime), key=lambda r: r.trigger_depth)
        assert [r.trigger_depth for r in runs] == list(range(11))  # 0..10, one run each
        assert [r.status for r in runs] == ["COMPLETED"] * 10 + ["FAILED"]
        [failed] = _failed_steps(runtime)
        assert failed.run_id == runs[-1].id
        assert "RELAYFLOW_MAX_TRIGGER_DEPTH" in (failed.error or "")
        for parent, child in pairwise(runs):
            assert child.parent_run_id == parent.id


class TestChildCap:
    def test_one_run_starts_at_most_max_child_runs(self, runtime, workspace):
        runtime.max_child_runs = 3
        install(runtime, workspace.id, _flow("leaf", {"first": {"type": "END"}}))
        install(runtime, workspace.id, _fan_out("spray", ("leaf",) * 5))
        [run_id] = start(runtime, workspace.id, "spray", email="s@example.com")

        assert drain_until_quiet(runtime)

        runs = _runs(runtime)
        assert len([r for r in runs if r.parent_run_id == run_id]) == 3
        parent = next(r for r in runs if r.id == run_id)
        assert parent.status == "FAILED"
        [failed] = _failed_steps(runtime)
        assert failed.node_id == "t3"
        assert "RELAYFLOW_MAX_CHILD_RUNS" in (failed.error or "")
        assert "3 child runs" in (failed.error or "")

    def test_children_are_counted_over_the_run_s_whole_life(self, runtime, workspace):
        """A loop that parks between its triggers: the children started before each park
        (committed, claimed again later) count as much as those of the current walk."""
        runtime.max_child_runs = 4
        clock = [runtime.clock()]
        runtime.clock = lambda: clock[0]  # type: ignore[method-assign]
        install(runtime, workspace.id, _flow("leaf", {"first": {"type": "END"}}))
        install(runtime, workspace.id, _flow("looper", {
            "first": {"type": "TRIGGER_WORKFLOW", "workflow": "leaf", "next": "again"},
            "again": {"type": "TRIGGER_WORKFLOW", "workflow": "leaf", "next": "pause"},
            "pause": {"type": "WAIT", "duration": "1m", "next": "check"},
            "check": {"type": "CONDITION", "when": "false", "then": "done", "else": "first"},
            "done": {"type": "END"},
        }))
        [run_id] = start(runtime, workspace.id, "looper", email="l@example.com")
        for _ in range(4):
            assert drain_until_quiet(runtime)
            clock[0] += timedelta(minutes=2)

        runs = _runs(runtime)
        assert len([r for r in runs if r.parent_run_id == run_id]) == 4
        parent = next(r for r in runs if r.id == run_id)
        assert parent.status == "FAILED"
        assert "RELAYFLOW_MAX_CHILD_RUNS" in (parent.error or "")


class TestRetryAtTheCap:
    def test_a_retry_keeps_the_depth_of_the_run_it_retries(self, runtime, workspace):
        runtime.max_trigger_depth = 2
        install(runtime, workspace.id, _fan_out("loop", ("loop",)))
        start(runtime, workspace.id, "loop", email="r@example.com")
        assert drain_until_quiet(runtime)
        [deepest] = [r for r in _runs(runtime) if r.trigger_depth == 2]
        assert deepest.status == "FAILED"

        with session_scope(runtime.sessions) as session:
            retried = run_service.retry(session, workspace_id=workspace.id, run_id=deepest.id,
                                        actor="test", now=runtime.clock())
            retried_id = retried.id
        assert drain_until_quiet(runtime)

        runs = {r.id: r for r in _runs(runtime)}
        assert len(runs) == 4  # the chain of 3, and the retry: no new chain behind it
        assert (runs[retried_id].trigger_depth, runs[retried_id].status) == (2, "FAILED")
