"""The effect phase of a batch: every run's in-flight INTEGRATION call or message,
performed side by side between two fenced commits.

A round goes:
1. `begin` each effect: a message is checked against what the batch read once (provider,
   suppression, allow-list, caps; services/delivery.Reads) and either settles without
   being sent (suppressed, capped, refused as rendered, an interrupted SMTP send) or
   gets its "sending now" mark among the run's pending writes;
2. one fenced commit for the whole batch: a lost lease or a cancel stops a run here,
   before its effect;
3. the effects run concurrently on the worker's thread pool (no transaction open; each
   reaches its target through the egress guard under its own deadline);
4. `finish` records each result and the run walks on to its next effect or its end.
With a pool (services/walk.py) the next round's `begin` comes before the commit of step 4,
so one fenced commit carries a round's results and the next round's marks; one run at a
time, each result is committed on its own.

So each run keeps the order of the single-run path: intent committed, "performing now"
committed, the effect, the result committed. A crash in step 3 or 4 interrupts up to a
batch of effects at once, each recovered as one would be (docs/guarantees.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import timedelta
from functools import partial
from typing import Any

from relayflow.delivery.guarded_http import Guard
from relayflow.engine import stepper
from relayflow.engine.outcome import (
    EffectResult,
    Fail,
    HttpCall,
    HttpResult,
    SendMessage,
    SendResult,
)
from relayflow.services import delivery as delivery_service
from relayflow.services import frequency as frequency_service
from relayflow.services import http as http_service
from relayflow.services.runtime import Runtime
from relayflow.services.walker import InFlight, RunWalker
from relayflow.telemetry import tracing

log = logging.getLogger(__name__)

# An effect ready to go: called on a pool thread, touching no database.
Effect = Callable[[], Any]


class Raised:
    """An effect that raised instead of answering (a bug: providers turn every failure they
    know into a result); its run is set aside when the result is recorded."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read(runtime: Runtime, walkers: Sequence[RunWalker]) -> delivery_service.Reads:
    """What this round's effects read, in one transaction."""
    messages, workspaces = [], set()
    for walker in walkers:
        flight = walker.in_flight
        assert flight is not None
        if isinstance(flight.effect, SendMessage):
            messages.append((walker.run.workspace_id, walker.run.contact_id,
                             flight.effect.channel))
        else:
            workspaces.add(walker.run.workspace_id)
    return delivery_service.read_many(runtime, messages=messages, workspaces=workspaces)


def begin(runtime: Runtime, walker: RunWalker, reads: delivery_service.Reads) -> Effect | None:
    """The run's in-flight effect, ready to perform once this round's marks are committed;
    None when it settled without one (its result is already recorded)."""
    flight = walker.in_flight
    assert flight is not None
    run = walker.run
    if isinstance(flight.effect, HttpCall):
        guard = Guard(allow=reads.allow.get(run.workspace_id, runtime.network_allow))
        return partial(http_service.perform, flight.effect, guard=guard,
                       idempotency_key=f"relayflow-{run.id}-{flight.step_id}",
                       traceparent=tracing.traceparent(walker.live_spans.get(flight.node_id)))
    effect, attempt = flight.effect, flight.attempt
    assert flight.attempt_id is not None
    assert attempt is not None
    attempt_id = flight.attempt_id
    context = reads.context(workspace_id=run.workspace_id, contact_id=run.contact_id,
                            channel=effect.channel)
    settled = _settle(runtime, walker, flight, context, reads)
    if settled is not None:
        if settled["status"] == "FAILED":
            walker.attempt_failed(flight.node_id, attempt, settled)
        else:
            walker.writes.attempt_updates.append({"id": attempt_id, **settled})
            walker.attempt_ended(flight.node_id, attempt, settled["status"])
        finish(runtime, walker, flight, SendResult(
            attempt_id=str(attempt_id), status=settled["status"],
            error=settled.get("suppressed_by") or settled.get("error")))
        return None
    # "Sending now", committed by the round's fenced commit before the send.
    walker.writes.attempt_updates.append({"id": attempt_id,
                                          "send_started_at": runtime.clock()})
    walker.sending = flight
    # Loaded here, on this thread: the provider's credentials are named secrets.
    secrets = dict(walker.secrets) if context.provider != "outbox" else {}
    return partial(
        delivery_service.send, attempt_id=attempt_id,
        attempt_number=int(attempt["attempt_number"]), channel=effect.channel, to=effect.to,
        subject=effect.subject, body=effect.body, html=effect.html,
        headers=walker.list_headers(effect.channel), context=context, secrets=secrets,
        max_attempts=runtime.delivery_max_attempts,
        retry_base=timedelta(seconds=runtime.delivery_retry_base_seconds))


def _settle(runtime: Runtime, walker: RunWalker, flight: InFlight,
            context: delivery_service.SendContext,
            reads: delivery_service.Reads) -> dict[str, Any] | None:
    """The attempt's final fields when the message must not be sent, else None."""
    effect = flight.effect
    assert isinstance(effect, SendMessage)
    run = walker.run
    if context.suppressed_by:  # checked now, not when the run started
        return {"status": "SUPPRESSED", "suppressed_by": context.suppressed_by,
                "error": f"not sent: the contact's {effect.channel} is {context.suppressed_by}"}
    # A message that cannot be sent as rendered fails for good here, before "sending
    # now" is committed (so never "outcome unknown") and before it takes a capped place.
    invalid = delivery_service.refusal(
        channel=effect.channel, to=effect.to, subject=effect.subject,
        headers=walker.list_headers(effect.channel), context=context)
    if invalid is not None:
        return {"status": "FAILED", "error": invalid}
    capped = reads.capped(run.workspace_id, effect.channel)
    refused = None if flight.interrupted or not capped else frequency_service.reserve(
        runtime, workspace_id=run.workspace_id, contact_id=run.contact_id,
        channel=effect.channel, key=flight.step_id)
    if refused is not None:
        return {"status": "SUPPRESSED", "suppressed_by": frequency_service.SUPPRESSED_BY,
                "error": refused.error}
    unknown = flight.interrupted and delivery_service.interrupted_outcome(context.provider)
    if unknown:
        return {"status": "FAILED", "error": unknown}
    return None


def perform(effects: Sequence[Effect], pool: Executor | None) -> list[Any]:
    """Every effect's answer, in order, the effects run side by side on `pool` (in this
    thread, one after another, without one)."""
    def guarded(effect: Effect) -> Any:
        try:
            return effect()
        except Exception as exc:  # recorded against its own run only
            return Raised(exc)

    if pool is None or len(effects) < 2:
        return [guarded(effect) for effect in effects]
    return list(pool.map(guarded, effects))


def finish(runtime: Runtime, walker: RunWalker, flight: InFlight, answer: Any) -> None:
    """Record what the effect did and move the run on (its next walk is the caller's)."""
    walker.in_flight = None
    walker.sending = None
    if isinstance(answer, Raised):
        raise answer.exc
    response = None
    result: EffectResult
    if isinstance(flight.effect, HttpCall):
        assert isinstance(answer, HttpResult)
        result = answer
        response = stepper.redact(
            {"status": answer.status, "headers": answer.headers, "body": answer.body,
             "error": answer.error, "attempts": answer.attempts,
             "elapsed_ms": answer.elapsed_ms},
            walker.secrets.loaded())
    elif isinstance(answer, SendResult):
        result = answer
    else:
        sent = _sent(runtime, walker, flight, answer)
        if sent is None:  # parked for a retry
            return
        result = sent
    walker.ctx.now = runtime.clock()
    outcome = stepper.resume(walker.graph, flight.node_id, walker.ctx, result)
    if isinstance(outcome, Fail):  # error text can echo a secret too
        outcome = Fail(reason=str(stepper.redact(outcome.reason, walker.secrets.loaded())),
                       error_class=outcome.error_class, output=outcome.output)
    walker.record(flight.node_id, outcome, walker.ctx.now, step_id=flight.step_id,
                  started_at=flight.started_at, response=response)


def _sent(runtime: Runtime, walker: RunWalker, flight: InFlight,
          outcome: delivery_service.Sent | delivery_service.Failed) -> SendResult | None:
    """The provider's answer on the attempt row; None when the run parks for a retry."""
    attempt_id, attempt = flight.attempt_id, flight.attempt
    assert attempt_id is not None
    assert attempt is not None
    now = runtime.clock()
    secrets = walker.secrets.loaded()
    if isinstance(outcome, delivery_service.Sent):
        walker.writes.attempt_updates.append({
            "id": attempt_id, "status": "SENT", "sent_at": now,
            "provider_message_id": outcome.provider_message_id,
            "provider_response": stepper.redact(outcome.response, secrets), "error": None})
        walker.attempt_ended(flight.node_id, attempt, "SENT")
        return SendResult(attempt_id=str(attempt_id), status="SENT")
    error = str(stepper.redact(outcome.error, secrets))
    walker.attempt_failed(flight.node_id, attempt, {
        "status": "FAILED", "error": error,
        "provider_response": stepper.redact(outcome.response, secrets)})
    if outcome.retry_after is None:
        return SendResult(attempt_id=str(attempt_id), status="FAILED", error=error)
    walker.queue_retry(flight, attempt, now + outcome.retry_after, now)
    return None


__all__ = ["Effect", "Raised", "begin", "finish", "perform", "read"]
