"""A provider's 429 Retry-After is honoured, through the real worker path, in real time.

The `http` provider of the workflows' SMS channel is the test server's /ratelimited route:
its first answer is 429 with Retry-After (delta-seconds, or an HTTP-date), every request
before that time is refused again, and later ones are delivered once per Idempotency-Key.
The server's own arrival times show when each attempt reached it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from relayflow.delivery.retry import RETRY_AFTER_CAP
from relayflow.services.runtime import Runtime
from relayflow.storage.models import DeliveryAttempt
from tests.support import httpserver
from tests.support.flows import attempts_of, install, run_of, set_provider, start, steps_of
from tests.support.worker import drain

RUNS = 3
WAIT = 2  # seconds of Retry-After asked by the provider


def _sms_flow() -> dict:
    return {"key": "sms", "trigger": {"type": "manual"}, "start": "send", "nodes": {
        "send": {"type": "SEND_MESSAGE", "channel": "sms", "to": "+14155550123",
                 "body": "Code {{ event.code }}", "next": "done"},
        "done": {"type": "END"}}}


def _setup(runtime: Runtime, workspace, url: str) -> None:
    set_provider(runtime, workspace.id, "sms", {
        "type": "http", "url": url, "body": {"to": "{{ to }}", "text": "{{ body }}"},
        "message_id_path": "body.id"})
    install(runtime, workspace.id, _sms_flow())
    # Backoff alone would retry after 0.05-0.1 s: only Retry-After can make it wait longer.
    runtime.delivery_retry_base_seconds = 0.1


def _run_until_finished(runtime: Runtime, run_ids: list, *, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        drain(runtime)
        if all(run_of(runtime, r).status == "COMPLETED" for r in run_ids):
            return
        time.sleep(0.05)
    raise AssertionError(f"runs not finished within {within} s: "
                         f"{[run_of(runtime, r).status for r in run_ids]}")


def _chain(runtime: Runtime, run_id) -> list[DeliveryAttempt]:  # type: ignore[no-untyped-def]
    return sorted(attempts_of(runtime, run_id), key=lambda a: a.attempt_number)


class TestProviderRetryAfter:
    @pytest.mark.parametrize("form", ["delta", "date"])
    def test_the_retry_reaches_the_provider_no_sooner_than_retry_after(
        self, runtime: Runtime, workspace, http_server: httpserver.TestHttpServer, form: str
    ) -> None:
        path = f"/ratelimited/{WAIT}" + ("/date" if form == "date" else "")
        _setup(runtime, workspace, f"{http_server.url}{path}")
        run_ids = start(runtime, workspace.id, "sms", email="d@example.com",
                        event={"code": "4242"}, count=RUNS)

        _run_until_finished(runtime, run_ids, within=WAIT + 15)

        until = http_server.limited_until[path]
        arrivals = {r.headers["Idempotency-Key"]: [] for r in http_server.requests}
        for request in http_server.requests:
            arrivals[request.headers["Idempotency-Key"]].append(request.at)
        first_at = min(r.at for r in http_server.requests)
        gaps, asked, retries = [], [], []
        for run_id in run_ids:
            chain = _chain(runtime, run_id)
            assert [(a.attempt_number, a.status) for a in chain] == [(1, "FAILED"), (2, "SENT")]
            refused, sent = chain
            assert refused.provider_response["status"] == 429
            assert "429" in (refused.error or "")
            assert sent.retry_of == refused.id
            assert sent.provider_message_id is not None
            [t1] = arrivals[f"relayflow-attempt-{refused.id}"]
            [t2] = arrivals[f"relayflow-attempt-{sent.id}"]
            asked.append(refused.provider_response["retry_after"])
            gaps.append(t2 - t1)
            retries.append(t2)
            assert t2 - t1 >= refused.provider_response["retry_after"]
            assert t2 >= until
            assert steps_of(runtime, run_id)[1].delivery_attempt_id == sent.id
        earliest_retry = min(retries)
        print(f"\nprovider 429 Retry-After ({form}, {WAIT} s asked from the first refusal): "  # noqa: T201
              f"{RUNS} runs, {len(http_server.requests)} requests, retry_after recorded "
              f"{asked}, each retry {min(gaps):.2f}-{max(gaps):.2f} s after its 429, "
              f"earliest retry {earliest_retry - first_at:.2f} s after the first refusal, "
              f"{len(http_server.delivered)} messages delivered")

        assert len(http_server.requests) == 2 * RUNS  # one 429 and one success per run
        assert len(http_server.delivered) == RUNS
        assert earliest_retry - first_at >= WAIT
        assert {run_of(runtime, r).status for r in run_ids} == {"COMPLETED"}

    @pytest.mark.parametrize(("asked", "parked"), [
        (7200, timedelta(hours=2)),        # longer than the 1 h backoff cap: honoured
        (10 * 86_400, RETRY_AFTER_CAP),    # absurd: waited for a day
    ])
    def test_a_long_retry_after_parks_the_run_that_long(
        self, runtime: Runtime, workspace, http_server: httpserver.TestHttpServer, asked: int,
        parked: timedelta,
    ) -> None:
        _setup(runtime, workspace, f"{http_server.url}/ratelimited/{asked}")
        [run_id] = start(runtime, workspace.id, "sms", email="d@example.com",
                         event={"code": "1"})
        before = datetime.now(UTC)

        drain(runtime)

        run = run_of(runtime, run_id)
        assert run.status == "RUNNING"
        assert run.wake_at is not None
        assert before + parked <= run.wake_at <= datetime.now(UTC) + parked
        refused, queued = _chain(runtime, run_id)
        assert (refused.status, queued.status) == ("FAILED", "QUEUED")
        assert refused.provider_response["retry_after"] == asked
        assert len(http_server.requests) == 1
