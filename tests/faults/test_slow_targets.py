"""One slow or huge HTTP target cannot hold a worker or fill its memory.

Targets are real sockets on 127.0.0.1 (tests/support/slowtarget.py): one trickles its
headers or its body a byte a second, one answers 300 MB generated on the fly. INTEGRATION
runs are walked by the worker code (walk.advance); the http provider is called as the
delivery service calls it. The server side says what reached the wire: how long it held the
connection, how many bytes it got out, whether the client hung up first.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relayflow.delivery import guarded_http
from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import HttpConfig, parse
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.http_provider import HttpMessageProvider
from relayflow.delivery.registry import provider_for
from tests.support import slowtarget
from tests.support.flows import install, run_of, start, steps_of
from tests.support.worker import drain

MB = 1024 * 1024
LOOPBACK = Guard(allow=AllowList.parse("127.0.0.0/8"))
# The call must end at its 2 s deadline; the rest is slack for a loaded 2-core machine
# (the targets hold a deadline-less client for 15 s, see slowtarget.hold_limit).
DEADLINE_BOUND = 7.0


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[slowtarget.SlowTarget]:
    server = slowtarget.start(request.param)
    yield server
    server.close()


def _flow(url: str, **node: Any) -> dict[str, Any]:
    call = {"type": "INTEGRATION", "timeout": 2, "request": {"method": "GET", "url": url},
            "next": "done", **node}
    nodes = {"call": call, "done": {"type": "END"}}
    if "on_error" in node:
        nodes["fallback"] = {"type": "END"}
    return {"key": "slow", "trigger": {"type": "manual"}, "start": "call", "nodes": nodes}


def _timed(work: Callable[[], Any]) -> tuple[Any, float]:
    began = time.monotonic()
    result = work()
    return result, time.monotonic() - began


def _peak(work: Callable[[], Any]) -> tuple[Any, int]:
    """What `work` returns, and the most memory Python held at once meanwhile (bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - before


class TestIntegrationDeadline:
    @pytest.mark.parametrize("target", ["headers", "body"], indirect=True)
    def test_a_trickling_target_fails_the_node_at_its_timeout(self, runtime, workspace,
                                                               target):
        install(runtime, workspace.id, _flow(target.url))
        [run_id] = start(runtime, workspace.id, "slow", email="t@example.com")

        _, took = _timed(lambda: drain(runtime))

        served = target.wait_ended()
        assert took < DEADLINE_BOUND, f"the walk took {took:.1f}s"
        assert served.client_closed
        assert served.held < DEADLINE_BOUND
        run = run_of(runtime, run_id)
        assert run.status == "FAILED"
        assert "timed out after 2s" in (run.error or "")

    @pytest.mark.parametrize("target", ["body"], indirect=True)
    def test_a_timed_out_call_takes_on_error(self, runtime, workspace, target):
        install(runtime, workspace.id, _flow(target.url, on_error="fallback"))
        [run_id] = start(runtime, workspace.id, "slow", email="t@example.com")

        _, took = _timed(lambda: drain(runtime))

        assert took < DEADLINE_BOUND
        assert run_of(runtime, run_id).status == "COMPLETED"
        call = steps_of(runtime, run_id)[1]
        assert call.output["error"] == "timed out after 2s"
        assert [s.node_id for s in steps_of(runtime, run_id)][-1] == "fallback"

    @pytest.mark.parametrize("target", ["huge"], indirect=True)
    def test_a_300_mb_answer_is_cut_at_64_kib_and_never_held(self, runtime, workspace,
                                                             target):
        flow = _flow(target.url)
        flow["nodes"]["call"]["timeout"] = 60
        install(runtime, workspace.id, flow)
        [run_id] = start(runtime, workspace.id, "slow", email="t@example.com")

        _, peak = _peak(lambda: drain(runtime))

        served = target.wait_ended()
        assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB while walking"
        assert served.client_closed
        assert served.bytes_sent < 64 * MB, f"{served.bytes_sent / MB:.1f} MiB left the server"
        assert run_of(runtime, run_id).status == "COMPLETED"
        response = steps_of(runtime, run_id)[1].response
        assert response["status"] == 200
        assert response["body"] == "a" * 64 * 1024


class TestCompressedAnswer:
    @pytest.mark.parametrize("target", ["gzip"], indirect=True)
    def test_a_gzip_answer_inflating_to_300_mb_is_decoded_only_to_the_cut(self, target):
        response, peak = _peak(lambda: guarded_http.request(
            "GET", target.url, guard=LOOPBACK, timeout=60, max_body=64 * 1024))

        served = target.wait_ended()
        assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB while reading"
        assert served.client_closed
        assert response.content == b"a" * 64 * 1024
        assert response.truncated


def _provider(url: str, *, timeout: float = 2, deadline: float = 30) -> HttpMessageProvider:
    config = parse("sms", {"type": "http", "url": url, "timeout": timeout,
                           "message_id_path": None})
    assert isinstance(config, HttpConfig)
    return HttpMessageProvider(config, token=None, guard=LOOPBACK, deadline=deadline)


MESSAGE = OutboundMessage(attempt_id="att-1", channel="sms", to="+14155550123", subject="",
                          body="Your code is 4242", idempotency_key="relayflow-attempt-1")


class TestHttpProviderDeadline:
    @pytest.mark.parametrize("target", ["headers", "body"], indirect=True)
    def test_a_trickling_provider_fails_the_attempt_at_its_timeout(self, target):
        provider = _provider(target.url)

        began = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            provider.send(MESSAGE)
        took = time.monotonic() - began

        assert took < DEADLINE_BOUND, f"the send took {took:.1f}s"
        assert caught.value.retryable
        assert "timed out after 2s" in str(caught.value)
        assert target.wait_ended().client_closed

    @pytest.mark.parametrize("target", ["body"], indirect=True)
    def test_the_instance_deadline_bounds_a_longer_configured_timeout(self, target):
        # As the delivery service builds it, with Runtime.provider_timeout_seconds.
        provider = provider_for("sms", {"type": "http", "url": target.url, "timeout": 60},
                                guard=LOOPBACK, deadline=2)

        began = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out after 2s"):
            provider.send(MESSAGE)

        assert time.monotonic() - began < DEADLINE_BOUND

    @pytest.mark.parametrize("target", ["huge"], indirect=True)
    def test_a_300_mb_answer_is_cut_and_never_held(self, target):
        provider = _provider(target.url, timeout=60)

        result, peak = _peak(lambda: provider.send(MESSAGE))

        served = target.wait_ended()
        assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB while sending"
        assert served.client_closed
        assert served.bytes_sent < 64 * MB
        assert result.response["body"] == "a" * 16 * 1024
