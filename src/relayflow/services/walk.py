"""Advance claimed runs through their graphs: the worker's hot path, a batch at a time.

A batch of runs is claimed under a lease and walked in memory (services/walker.py); their
writes go back in one fenced transaction. Nodes without outside effects change only the
database, so a whole stretch of them commits atomically: a crash before the commit leaves
nothing behind to repeat. Effects (INTEGRATION, SEND_MESSAGE) then go in rounds
(services/effects.py): every effect of a round at once on the worker's pool, between
fenced commits that each carry the results of one round and the "performing now" marks of
the next. Every commit checks the lease token first (fencing): a worker whose lease
expired writes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from relayflow.engine.outcome import SendMessage, StartResult, StartRun
from relayflow.engine.status import TERMINAL
from relayflow.faults import crash_point, refuse_write
from relayflow.services import canceler, effects
from relayflow.services import delivery as delivery_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.services.secret import WorkspaceSecrets
from relayflow.services.walker import MAX_STEPS_PER_CLAIM, RunWalker, Writes
from relayflow.storage.db import is_conflict, is_unavailable, read_scope, session_scope
from relayflow.storage.models import WorkflowRun
from relayflow.storage.repositories import contact as contact_repo
from relayflow.storage.repositories import delivery as delivery_repo
from relayflow.storage.repositories import job as job_repo
from relayflow.storage.repositories import provider_config as provider_repo
from relayflow.storage.repositories import run as run_repo
from relayflow.storage.repositories import walk_writes
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.storage.repositories.job import Lease
from relayflow.telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)


def claim(runtime: Runtime, *, worker: str, limit: int, lease_seconds: float) -> list[RunWalker]:
    """Lease due runs, then load them. The lease is the only write, so on SQLite the file's
    write lock is held for the UPDATE alone, not for the loading."""
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        # Due by this clock; the lease is timed by the database's (see job_repo.claim).
        leases = job_repo.claim(session, worker=worker, now=now, lease_seconds=lease_seconds,
                                limit=limit)
    if not leases:
        return []
    metrics.claimed(len(leases))
    with read_scope(runtime.sessions) as session:
        walkers, ended = _load(session, runtime, leases, now)
    if ended:  # a terminal run never changes again: only its stray job goes
        with session_scope(runtime.sessions) as session:
            job_repo.remove(session, ended)
    return walkers


def _load(session: Session, runtime: Runtime, leases: Sequence[Lease],
          now: datetime) -> tuple[list[RunWalker], list[uuid.UUID]]:
    """The claimed runs with all they need to walk, in a fixed number of queries, and the
    ids of those already terminal."""
    tokens = {lease.run_id: lease.token for lease in leases}
    runs = run_repo.get_many(session, list(tokens))
    # A PENDING run has only its trigger step, so the hot path skips loading steps.
    resumed = [r.id for r in runs if r.status != "PENDING"]
    steps = run_repo.steps_of(session, resumed) if resumed else {}
    contacts = contact_repo.get_many(session, [r.contact_id for r in runs if r.contact_id])
    attempt_ids = [s.delivery_attempt_id for ss in steps.values() for s in ss
                   if s.status == "RUNNING" and s.delivery_attempt_id]
    attempts = delivery_repo.get_many(session, attempt_ids)
    versions = workflow_repo.get_versions(session, [r.version_id for r in runs])
    workflows = workflow_repo.get_many(session, [r.workflow_id for r in runs])
    providers = provider_repo.types_of(session, [r.workspace_id for r in runs])
    cancels = {lease.run_id: lease.cancel_requested for lease in leases}
    secrets_by_ws: dict[uuid.UUID, WorkspaceSecrets] = {}
    walkers, ended = [], []
    for run in runs:
        if run.status in TERMINAL:
            ended.append(run.id)
            continue
        version, workflow = versions[run.version_id], workflows[run.workflow_id]
        contact = contacts.get(run.contact_id) if run.contact_id else None
        secrets = secrets_by_ws.setdefault(
            run.workspace_id, WorkspaceSecrets(runtime.sessions, run.workspace_id, runtime.cipher))
        walkers.append(RunWalker(
            run=run, token=tokens[run.id], graph=workflow_service.graph_of(version),
            contact=contact_repo.as_variables(contact) if contact else None,
            steps=steps.get(run.id, []), attempts=attempts, workflow_key=workflow.key,
            version_number=version.number, secrets=secrets, now=now, runtime=runtime,
            cancel_requested=cancels[run.id] or _deactivated(run, workflow.cancel_before),
            provider_of=lambda ws, channel: providers.get((ws, channel), "outbox")))
    if tracing.enabled():
        parents = {lease.run_id: lease.traceparent for lease in leases}
        for walker in walkers:
            walker.trace = tracing.start("run", traceparent=parents.get(walker.run_id),
                                         attributes=_run_attributes(walker))
    for walker in walkers:
        if walker.cancel_requested:
            workflow = workflows[walker.run.workflow_id]
            walker.cancel(now, None if cancels[walker.run_id] else canceler.deactivation(
                workflow.key, workflow.deactivated_by))
    return walkers, ended


def _run_attributes(walker: RunWalker) -> dict[str, str]:
    return {"relayflow.run_id": str(walker.run_id),
            "relayflow.workflow": str(walker.ctx.run["workflow"]),
            "relayflow.workspace_id": str(walker.run.workspace_id)}


def _over_caps(runtime: Runtime, session: Session, walker: RunWalker) -> str | None:
    """Why this run may start no further child run (its depth or its child count is at
    the cap), else None. Children are counted over the run's whole life: those committed
    (by any earlier claim) and those of this walk not yet written."""
    depth = walker.run.trigger_depth
    if depth >= runtime.max_trigger_depth:
        return (f"not started: this run is {depth} upstream triggers deep, and runs may "
                f"chain at most {runtime.max_trigger_depth} deep "
                "(RELAYFLOW_MAX_TRIGGER_DEPTH); does a workflow trigger itself?")
    started = (run_repo.count_children(session, walker.run.workspace_id, walker.run.id)
               + len(walker.writes.children))
    if started >= runtime.max_child_runs:
        return (f"not started: this run already started {started} child runs, the most one "
                f"run may start (RELAYFLOW_MAX_CHILD_RUNS = {runtime.max_child_runs})")
    return None


def _deactivated(run: WorkflowRun, cancel_before: datetime | None) -> bool:
    """The run's workflow was deactivated after the run was created: it is canceled here,
    at this step boundary, as an operator cancel would be, whether or not the background
    sweep (services/workflow.sweep) has reached it yet."""
    return cancel_before is not None and run.created_at <= cancel_before


def make_child_starter(runtime: Runtime) -> Callable[[RunWalker, StartRun], StartResult]:
    def start_child(walker: RunWalker, effect: StartRun) -> StartResult:
        with session_scope(runtime.sessions) as session:
            refused = _over_caps(runtime, session, walker)
            if refused is not None:
                return StartResult(run_id=None, error=refused)
            workflow = workflow_repo.get_by_key(session, walker.run.workspace_id, effect.workflow)
            if workflow is None or workflow.current_version_id is None:
                return StartResult(run_id=None, error=f"no workflow {effect.workflow!r}")
            if workflow.status != "ACTIVE":
                return StartResult(run_id=None,
                                   error=f"workflow {effect.workflow!r} is {workflow.status}")
            # Created "now", not at the claim's time: a background cancel of this workflow
            # spares runs created after it was reactivated (see workflow.cancel_before).
            rows = run_service.new_run_rows(
                workspace_id=walker.run.workspace_id, workflow_id=workflow.id,
                version_id=workflow.current_version_id, contact_id=walker.run.contact_id,
                trigger_type="upstream", event=dict(walker.ctx.event),
                now=max(walker.ctx.now, runtime.clock()), parent_run_id=walker.run.id,
                traceparent=tracing.traceparent(walker.trace))
        rows[0]["trigger_depth"] = walker.run.trigger_depth + 1
        walker.writes.children.append(rows)
        walker.children_started.append(effect.workflow)
        return StartResult(run_id=str(rows[0]["id"]))

    return start_child


def commit(runtime: Runtime, walkers: Sequence[RunWalker]) -> None:
    """Write every walker's pending changes in one transaction, fenced by lease token. The
    rows are made ready before it begins (on SQLite the file's write lock is held from the
    first statement to COMMIT); a run canceled at the fence has its own made again."""
    live = [w for w in walkers if not w.dropped and not w.closed]
    if not live:
        return
    ready = {w.run_id: w.writes.storable() for w in live}
    dialect = runtime.dialect
    prepared = walk_writes.prepare(dialect, _gather(live, ready))
    now = runtime.clock()
    with session_scope(runtime.sessions) as session:
        states = job_repo.lock(session, [w.run_id for w in live])
        marks = workflow_repo.cancel_marks(session, {w.run.workflow_id for w in live})
        accepted = []
        for walker in live:
            state = states.get(walker.run_id)
            if state is None or state.token != walker.token:
                log.warning("lease lost; discarding this worker's progress",
                            extra={"run_id": str(walker.run_id)})
                walker.dropped = True
                metrics.lease_lost()
                continue
            mark = marks.get(walker.run.workflow_id)
            deactivated = _deactivated(walker.run, mark[0] if mark else None)
            if (state.cancel_requested or deactivated) and not walker.canceled:
                walker.cancel(now, None if state.cancel_requested or mark is None else
                              canceler.deactivation(str(walker.ctx.run["workflow"]), mark[1]))
                ready[walker.run_id] = walker.writes.storable()
            accepted.append(walker)
        if len(accepted) < len(live) or any(w.canceled for w in accepted):
            prepared = walk_writes.prepare(dialect, _gather(accepted, ready))
        walk_writes.apply(session, prepared, now)
    _report(accepted, ready)
    for walker in accepted:
        walker.writes = Writes()
        walker.closed = walker.finished


def _report(walkers: Sequence[RunWalker], ready: dict[uuid.UUID, Writes]) -> None:
    """What a commit wrote, to the metrics and the trace: steps and attempts that ended,
    child runs started, the runs' ends. Never raises: what was committed stays committed."""
    try:
        batch = metrics.Batch()
        for walker in walkers:
            _count(walker, ready[walker.run_id], batch)
        batch.write()
    except Exception:  # a metric lost is no reason to stop walking runs
        log.exception("recording the metrics of a commit failed")


def _count(walker: RunWalker, committed: Writes, batch: metrics.Batch) -> None:
    for node_id, attempt, status, ended in walker.observed_attempts:
        channel, provider = str(attempt["channel"]), str(attempt["provider"])
        batch.delivery_attempt(channel, provider, status)
        if walker.trace is not None:
            tracing.end(tracing.start(
                "delivery attempt", parent=walker.live_spans.get(node_id) or walker.trace,
                at=attempt.get("created_at"), attributes={
                    "relayflow.channel": channel, "relayflow.provider": provider,
                    "relayflow.attempt": int(attempt.get("attempt_number") or 1),
                    "relayflow.status": status}),
                at=ended, failed=status if status == "FAILED" else None)
    for step in walker.observed_steps:
        batch.step_finished(step.node_type, step.status,
                            (step.ended - step.started).total_seconds())
        if walker.trace is not None:
            span = walker.live_spans.pop(step.node_id, None) or tracing.start(
                "step", parent=walker.trace, at=step.started, attributes={
                    "relayflow.node": step.node_id, "relayflow.node_type": step.node_type})
            tracing.end(span, at=step.ended, failed=step.error,
                        attributes={"relayflow.status": step.status})
    walker.observed_steps, walker.observed_attempts = [], []
    for key in walker.children_started:
        batch.run_started(key, "upstream")
    walker.children_started = []
    status = committed.run_values.get("status")
    if status and walker.trace is not None:
        tracing.annotate(walker.trace, {"relayflow.status": str(status)})
    if status in TERMINAL:
        finished = committed.run_values.get("finished_at")
        created = walker.run.created_at
        seconds = (finished - created).total_seconds() if finished and created else None
        batch.run_finished(str(walker.ctx.run["workflow"]), status, seconds)


def _gather(walkers: Sequence[RunWalker],
            ready: dict[uuid.UUID, Writes]) -> walk_writes.BatchWrites:
    """The accepted runs' pending writes as one batch of rows. What a run made as it walked
    (templates, answers, errors) may hold characters no column can store; written as they
    are, they would fail the whole batch's write: `ready` holds them made storable."""
    batch = walk_writes.BatchWrites()
    for walker in walkers:
        w = ready[walker.run_id]
        refuse_write(step["node_id"] for step in w.new_steps)
        batch.new_steps += w.new_steps
        batch.step_updates += w.step_updates
        batch.new_attempts += w.new_attempts
        batch.attempt_updates += w.attempt_updates
        batch.failure_groups += w.failure_groups
        if w.run_values:
            batch.run_updates.append({"id": walker.run_id, **w.run_values})
        if w.contact_set and walker.run.contact_id:
            batch.contact_sets.setdefault(walker.run.contact_id, {}).update(w.contact_set)
        for run_row, step, job in w.children:
            batch.children_runs.append(run_row)
            batch.children_steps.append(step)
            batch.children_jobs.append(job)
        if w.job == "delete":
            batch.finished.append(walker.run_id)
        elif w.job in ("park", "release") and w.due_at is not None:
            batch.parked.append((walker.run_id, w.due_at))
        if walker.canceled:
            batch.canceled.append(walker.run_id)
    return batch


def advance(runtime: Runtime, *, worker: str, limit: int, lease_seconds: float,
            on_claim: Callable[[list[RunWalker]], None] | None = None,
            pool: Executor | None = None) -> int:
    """One worker iteration: claim, walk, then the batch's effects in rounds, side by side
    on `pool` (one after another without one).

    Returns how many runs were claimed (0 means there was nothing due)."""
    walkers = claim(runtime, worker=worker, limit=limit, lease_seconds=lease_seconds)
    if not walkers:
        return 0
    if on_claim is not None:
        on_claim(walkers)
    start_child = make_child_starter(runtime)
    for walker in walkers:
        _isolated(walker, lambda w=walker: w.walk(start_child))
    if pool is None:  # one run at a time, each fenced just before its own effect
        try:
            _commit_batch(runtime, walkers)
            crash_point("after_intent")
            while flying := _flying(walkers):
                for walker in flying:
                    if walker.in_flight is not None and not walker.dropped:
                        _round(runtime, [walker], start_child)
        finally:
            _end_traces(walkers)
        return len(walkers)
    try:
        _rounds(runtime, walkers, start_child, pool)
    finally:
        _end_traces(walkers)
    return len(walkers)


def _end_traces(walkers: Sequence[RunWalker]) -> None:
    """This walk's spans end with it (a parked run's next walk is a span of its own)."""
    for walker in walkers:
        if walker.trace is None:
            continue
        for span in walker.live_spans.values():  # an effect this walk did not finish
            tracing.end(span, failed="not finished in this walk")
        walker.live_spans = {}
        tracing.end(walker.trace, failed="set aside" if walker.dropped else None,
                    attributes={"relayflow.steps": walker.steps_taken})
        walker.trace = None


def _flying(walkers: Sequence[RunWalker]) -> list[RunWalker]:
    return [w for w in walkers if w.in_flight is not None and not w.dropped and not w.finished]


def _begin(runtime: Runtime, walkers: Sequence[RunWalker],
           start_child: Callable[[RunWalker, StartRun], StartResult],
           may_begin: Callable[[RunWalker, delivery_service.Reads], bool] | None = None,
           ) -> list[tuple[RunWalker, effects.Effect]]:
    """Begin each run's effect (services/effects.py) that `may_begin` allows: its mark
    among the run's pending writes, or settled without one and walked on. The effects
    ready to perform."""
    if not walkers:
        return []
    reads = effects.read(runtime, walkers)
    if may_begin is not None:
        walkers = [w for w in walkers if may_begin(w, reads)]
    ready: list[tuple[RunWalker, effects.Effect]] = []

    def begin(walker: RunWalker) -> None:
        effect = effects.begin(runtime, walker, reads)
        if effect is None:  # settled without an effect: walk on to the next one
            walker.ctx.now = runtime.clock()
            walker.walk(start_child)
        else:
            ready.append((walker, effect))

    for walker in walkers:
        _isolated(walker, lambda w=walker: begin(w))
    return ready


def _perform(runtime: Runtime, ready: Sequence[tuple[RunWalker, effects.Effect]],
             start_child: Callable[[RunWalker, StartRun], StartResult],
             pool: Executor | None) -> None:
    """The committed effects of a round, then each result recorded and its run walked on
    (pending, for the next commit)."""
    going = [(w, effect) for w, effect in ready if not w.dropped and not w.finished]
    answers = effects.perform([effect for _, effect in going], pool)
    crash_point("after_effect")

    def finish(walker: RunWalker, answer: object) -> None:
        assert walker.in_flight is not None
        effects.finish(runtime, walker, walker.in_flight, answer)
        walker.ctx.now = runtime.clock()
        walker.walk(start_child)

    for (walker, _), answer in zip(going, answers, strict=True):
        _isolated(walker, lambda w=walker, a=answer: finish(w, a))


def _rounds(runtime: Runtime, walkers: Sequence[RunWalker],
            start_child: Callable[[RunWalker, StartRun], StartResult], pool: Executor) -> None:
    """The batch's effects, every one of a round at once. Each commit also carries the
    "performing now" marks of the effects that follow it: the first commit holds the
    intents and the first round's marks, each later one a round's results, the intents
    they led to and the next round's marks. A run's order is that of the single-run path
    (intent and mark committed, the effect, its result committed), with one transaction
    fewer per effect.

    Except for a message on a capped channel: taking its place under the cap is a write of
    its own, keyed by its step, so that a message recovered after a crash counts once. That
    key must be committed first, so such a message is begun only once its intent is."""
    committed: set[uuid.UUID] = set()  # the in-flight steps as of the last commit

    def may_begin(walker: RunWalker, reads: delivery_service.Reads) -> bool:
        flight = walker.in_flight
        assert flight is not None
        effect = flight.effect
        return (flight.step_id in committed or not isinstance(effect, SendMessage)
                or not reads.capped(walker.run.workspace_id, effect.channel))

    first = True
    while True:
        ready = _begin(runtime, _flying(walkers), start_child, may_begin)
        _commit_batch(runtime, walkers)
        committed = {w.in_flight.step_id for w in _flying(walkers) if w.in_flight}
        crash_point("after_intent" if first else "after_commit")
        first = False
        if not any(not w.dropped and not w.finished for w, _ in ready):
            if not _flying(walkers):
                return
            continue  # effects settled without being performed led to new ones
        _perform(runtime, ready, start_child, pool)


def _round(runtime: Runtime, walkers: Sequence[RunWalker],
           start_child: Callable[[RunWalker, StartRun], StartResult]) -> None:
    """One run's effect, fenced just before it starts: begin, commit the mark, perform,
    record the result and walk on, commit."""
    ready = _begin(runtime, walkers, start_child)
    _commit_batch(runtime, walkers)
    _perform(runtime, ready, start_child, None)
    _commit_batch(runtime, walkers)
    crash_point("after_commit")


def _commit_batch(runtime: Runtime, walkers: Sequence[RunWalker]) -> None:
    """One transaction for the whole batch; if it fails for a reason of one run's own, each
    run is written alone, so that run alone is set aside."""
    try:
        commit(runtime, walkers)
    except Exception as exc:
        if _shared_fault(exc):
            raise
        log.warning("writing a batch of %d runs failed (%s); writing them one at a time",
                    len(walkers), type(exc).__name__)
        for walker in walkers:
            _isolated(walker, lambda w=walker: commit(runtime, [w]))


def _isolated(walker: RunWalker, work: Callable[[], None]) -> None:
    """Do `work` for one run. A fault of that run's own (a bug, a value the database
    refuses) sets the run aside: its lease lapses and it resumes from its last committed
    step, as after a crash, while the rest of the batch goes on. A fault everyone shares
    (the database away, locked or in conflict) ends the iteration as before."""
    if walker.dropped:
        return
    try:
        with logs.bound(run_id=str(walker.run_id), workflow=str(walker.ctx.run["workflow"]),
                        workspace=str(walker.run.workspace_id)):
            work()
    except Exception as exc:
        if _shared_fault(exc):
            raise
        walker.dropped = True
        log.exception("run set aside: it resumes from its last committed step once its "
                      "lease lapses", extra={"run_id": str(walker.run_id)})


def _shared_fault(exc: BaseException) -> bool:
    return is_unavailable(exc) or is_conflict(exc) or isinstance(exc, OperationalError)


__all__ = ["MAX_STEPS_PER_CLAIM", "RunWalker", "Writes", "advance", "claim", "commit"]

