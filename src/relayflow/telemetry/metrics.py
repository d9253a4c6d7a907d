"""Prometheus metrics: the families (docs/operations.md describes each), what records them,
and the text a scrape gets.

The families are made on first use, not at import: prometheus-client decides when it is
first imported whether values live in this process's memory or in files that processes
share (PROMETHEUS_MULTIPROC_DIR), and `relayflow serve` sets that directory, for itself and
the workers it starts, only once it runs (share_between_processes).

Labels are bounded by what an operator defines (workflow keys, node types, channels,
providers) and by fixed vocabularies (statuses, outcomes, route templates): never an id, a
contact, an address or a token. What a transaction records is counted once it commits
(after_commit): a rolled-back run was never started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. A run may wait for days; a step is an evaluation or one outbound call.
RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
               3600.0, 21600.0, 86400.0, 604800.0)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Families:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram, disable_created_metrics

        disable_created_metrics()  # the `_created` samples: noise to every dashboard here
        self.runs_started = Counter(
            "relayflow_runs_started", "Runs opened, by workflow key and trigger type.",
            ["workflow", "trigger"])
        self.runs_finished = Counter(
            "relayflow_runs_finished", "Runs that reached a terminal status.",
            ["workflow", "status"])
        self.run_duration = Histogram(
            "relayflow_run_duration_seconds",
            "From a run's creation to its terminal status, waits included.",
            ["workflow", "status"], buckets=RUN_BUCKETS)
        self.step_duration = Histogram(
            "relayflow_step_duration_seconds",
            "One step, from its start to its result (an outbound call included).",
            ["node_type", "status"], buckets=STEP_BUCKETS)
        self.delivery_attempts = Counter(
            "relayflow_delivery_attempts",
            "Message delivery attempts that ended, by channel, provider and status.",
            ["channel", "provider", "status"])
        self.claims = Counter("relayflow_claims", "Runs claimed by workers.")
        self.lease_losses = Counter(
            "relayflow_lease_losses",
            "Claimed runs whose lease another worker took first (their progress discarded).")
        self.webhooks = Counter(
            "relayflow_webhook_requests",
            "Webhook requests that reached the intake: accepted, duplicate or rejected (the "
            "reason is the error's kind).", ["outcome", "reason"])
        self.http_duration = Histogram(
            "relayflow_http_request_duration_seconds",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS)
        self.database_errors = Counter(
            "relayflow_database_errors",
            "Database errors met by workers and requests: unavailable, conflict (a deadlock "
            "or serialization failure rolled back) or other.", ["kind"])
        self.database_outages = Counter(
            "relayflow_database_outages",
            "Times a worker found the database unreachable after it had been reachable.")


_lock = threading.Lock()
_families: _Families | None = None
_on = True  # off only to measure what recording costs (bench/engine.py --metrics off)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _f() -> _Families:
    global _families
    if _families is None:
        with _lock:
            if _families is None:
                _families = _Families()
    return _families


def _child(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: prometheus-client takes a lock for each lookup."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children.setdefault(key, metric.labels(*labels))
    return child


def warm() -> None:
    """Make the families now (about 0.2 s: prometheus-client's import), so that the first
    request or run does not wait for it. The app and the worker call it as they start."""
    if _on:
        _f()


def disable() -> None:
    """Record nothing from now on in this process: only to measure what recording costs."""
    global _on
    _on = False


# --- recording --------------------------------------------------------------------------


def run_started(workflow: str, trigger: str, count: int = 1) -> None:
    if not _on:
        return
    _child(_f().runs_started, workflow, trigger).inc(count)


def run_finished(workflow: str, status: str, seconds: float | None, count: int = 1) -> None:
    """`count` runs ended; their duration is observed when it is known (one run)."""
    if not _on:
        return
    families = _f()
    _child(families.runs_finished, workflow, status).inc(count)
    if seconds is not None:
        _child(families.run_duration, workflow, status).observe(max(0.0, seconds))


def claimed(count: int) -> None:
    if not _on:
        return
    if count:
        _f().claims.inc(count)


def lease_lost() -> None:
    if not _on:
        return
    _f().lease_losses.inc()


def webhook(outcome: str, reason: str = "") -> None:
    if not _on:
        return
    _child(_f().webhooks, outcome, reason).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    if not _on:
        return
    _child(_f().http_duration, method, route, str(status)).observe(seconds)


def database_error(kind: str) -> None:
    if not _on:
        return
    _child(_f().database_errors, kind).inc()


def database_outage() -> None:
    if not _on:
        return
    _f().database_outages.inc()


class Batch:
    """What one commit of a batch of runs recorded, written to the families in one go:
    a few value updates for each distinct set of labels instead of several for every step
    (with serve's shared files each update is a locked write; per step they cost the worker
    7% of its throughput, per batch nothing measurable)."""

    __slots__ = ("_attempts", "_ended", "_started", "_steps")

    def __init__(self) -> None:
        self._steps: dict[tuple[str, str], list[float]] = {}
        self._ended: dict[tuple[str, str], list[float | None]] = {}
        self._attempts: dict[tuple[str, str, str], int] = {}
        self._started: dict[tuple[str, str], int] = {}

    def step_finished(self, node_type: str, status: str, seconds: float) -> None:
        self._steps.setdefault((node_type, status), []).append(seconds)

    def run_finished(self, workflow: str, status: str, seconds: float | None) -> None:
        self._ended.setdefault((workflow, status), []).append(seconds)

    def delivery_attempt(self, channel: str, provider: str, status: str) -> None:
        key = (channel, provider, status)
        self._attempts[key] = self._attempts.get(key, 0) + 1

    def run_started(self, workflow: str, trigger: str) -> None:
        key = (workflow, trigger)
        self._started[key] = self._started.get(key, 0) + 1

    def write(self) -> None:
        if not _on or not (self._steps or self._ended or self._attempts or self._started):
            return
        families = _f()
        for labels, amounts in self._steps.items():
            observe_many(_child(families.step_duration, *labels), amounts)
        for labels, ended in self._ended.items():
            _child(families.runs_finished, *labels).inc(len(ended))
            known = [s for s in ended if s is not None]
            if known:
                observe_many(_child(families.run_duration, *labels), known)
        for labels, count in self._attempts.items():
            _child(families.delivery_attempts, *labels).inc(count)
        for labels, count in self._started.items():
            _child(families.runs_started, *labels).inc(count)


def observe_many(histogram: Any, amounts: list[float]) -> None:
    """`histogram.observe(a)` for each of `amounts`, as one update of its sum and one of
    each bucket they fall in (what observe does, per value: tests/test_metrics_batch.py
    holds the two to the same result)."""
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        amount = max(0.0, amount)
        counts[bisect_left(bounds, amount)] += 1
        total += amount
    histogram._sum.inc(total)
    for index, count in enumerate(counts):
        if count:
            histogram._buckets[index].inc(count)


# --- counted once the transaction commits -----------------------------------------------

_PENDING = "relayflow.metrics.pending"


def after_commit(session: Session, record: Callable[[], None]) -> None:
    """Call `record` once `session`'s transaction commits; never if it rolls back."""
    session.info.setdefault(_PENDING, []).append(record)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for record in session.info.pop(_PENDING, ()):
        record()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- exposition -------------------------------------------------------------------------


def share_between_processes() -> str | None:
    """Make this process and those it starts write their values to one directory (unless
    PROMETHEUS_MULTIPROC_DIR names one already), so that one scrape of `serve` sums them;
    the directory made, for the caller to remove when it stops. Call it before anything
    records a value."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    made = tempfile.mkdtemp(prefix="relayflow-metrics-")
    os.environ[MULTIPROC_ENV] = made
    return made


def remove_shared(directory: str | None) -> None:
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


def render(extra: Iterable[Any] = ()) -> bytes:
    """The text of a scrape: every process's values (the shared directory's, when there is
    one; else this process's) and the families in `extra`, made at the time of the scrape."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _f()  # the families exist, so a scrape lists them before their first value
    families = list(extra)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    if families:
        snapshot = CollectorRegistry(auto_describe=False)
        snapshot.register(_Snapshot(families))
        text += generate_latest(snapshot)
    return text


class _Snapshot:
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Iterable[Any]:
        return self._families


def gauge(name: str, documentation: str, value: float,
          labels: dict[str, str] | None = None) -> Any:
    """A gauge family of one value, for values read at the time of a scrape."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def gauges(name: str, documentation: str, label: str,
           values: dict[str, float]) -> Any:
    """A gauge family with one value per `label` value."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
