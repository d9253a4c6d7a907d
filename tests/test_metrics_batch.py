"""A batch of observations written at once (telemetry/metrics.py::observe_many) gives the
same histogram as observing each value: it reaches into prometheus-client's histogram, and
this holds it to the library's own observe."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from relayflow.telemetry.metrics import STEP_BUCKETS, observe_many


def test_observe_many_equals_observing_each_value() -> None:
    registry = CollectorRegistry()
    one = Histogram("one_by_one", "-", ["kind"], buckets=STEP_BUCKETS, registry=registry)
    many = Histogram("all_at_once", "-", ["kind"], buckets=STEP_BUCKETS, registry=registry)
    rng = random.Random(5)
    amounts = [rng.expovariate(4.0) for _ in range(500)]
    amounts += [0.0, 0.001, 0.005, 60.0, 61.0, 1e9]  # on the bounds, past the last one
    for amount in amounts:
        one.labels("x").observe(amount)
    observe_many(many.labels("x"), amounts)
    samples = {family.name: sorted((s.name.removeprefix(family.name),
                                    tuple(sorted(s.labels.items())), s.value)
                                   for s in family.samples if s.name.endswith(
                                       ("_bucket", "_sum", "_count")))
               for family in registry.collect()}
    assert samples["all_at_once"] == samples["one_by_one"]
    buckets = [s for s in samples["one_by_one"] if s[0] == "_bucket"]
    assert len(buckets) == len(STEP_BUCKETS) + 1
    assert max(s[2] for s in buckets) == len(amounts)
