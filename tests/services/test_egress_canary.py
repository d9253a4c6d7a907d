"""SSRF: a canary listener on loopback, and INTEGRATION steps (through the real worker)
and HTTP-provider sends aimed at it in every spelling, directly and through redirects.
The settings here allow only 127.0.0.2/32 (the redirecting test server), not loopback:
0 connections may reach the canary, and every step fails naming the rule."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from relayflow.config import Settings
from relayflow.delivery.base import DeliveryError, OutboundMessage
from relayflow.delivery.config import HttpConfig, parse
from relayflow.delivery.egress import AllowList
from relayflow.delivery.guarded_http import Guard
from relayflow.delivery.http_provider import HttpMessageProvider
from relayflow.services import network as network_service
from relayflow.storage.db import session_scope
from tests.support import httpserver
from tests.support.flows import attempts_of, install, run_of, set_provider, start, steps_of
from tests.support.worker import drain

REDIRECTOR_HOST = "127.0.0.2"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings without the loopback allowance: only the redirector is allowed."""
    return settings.model_copy(update={"network_allow": f"{REDIRECTOR_HOST}/32"})


@dataclass
class Canary:
    """Raw TCP listeners that count every connection they accept."""

    port: int
    port6: int | None
    accepted: list[tuple[str, int]] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)


def _listen(canary: Canary, family: int, host: str) -> int:
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))
    listener.listen(64)
    canary.sockets.append(listener)

    def accept() -> None:
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            canary.accepted.append(peer[:2])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return int(listener.getsockname()[1])


@pytest.fixture
def canary() -> Iterator[Canary]:
    box = Canary(port=0, port6=None)
    box.port = _listen(box, socket.AF_INET, "127.0.0.1")
    if socket.has_ipv6:
        try:
            box.port6 = _listen(box, socket.AF_INET6, "::1")
        except OSError:
            box.port6 = None
    yield box
    for listener in box.sockets:
        listener.close()


@pytest.fixture
def redirector() -> Iterator[httpserver.TestHttpServer]:
    server = httpserver.start(REDIRECTOR_HOST)
    yield server
    server.close()


def _direct(p: int, p6: int | None) -> list[tuple[str, str]]:
    """(URL, a word of the rule that must refuse it)."""
    targets = [
        (f"http://127.0.0.1:{p}/", "loopback"),
        (f"http://127.1:{p}/", "loopback"),
        (f"http://127.0.1:{p}/", "loopback"),
        (f"http://2130706433:{p}/", "loopback"),
        (f"http://0x7f000001:{p}/", "loopback"),
        (f"http://0x7F000001:{p}/", "loopback"),
        (f"http://0x7f.0.0.1:{p}/", "loopback"),
        (f"http://0x7f.1:{p}/", "loopback"),
        (f"http://0177.0.0.1:{p}/", "loopback"),
        (f"http://0177.1:{p}/", "loopback"),
        (f"http://017700000001:{p}/", "loopback"),
        (f"http://127.000.000.001:{p}/", "loopback"),
        (f"http://127.0.0.1.:{p}/", "loopback"),
        (f"http://%31%32%37.0.0.1:{p}/", "loopback"),
        (f"http://localhost:{p}/", "loopback"),
        (f"http://localhost.:{p}/", "loopback"),
        (f"http://LOCALHOST:{p}/", "loopback"),
        (f"http://[::ffff:127.0.0.1]:{p}/", "loopback"),
        (f"http://[::ffff:7f00:1]:{p}/", "loopback"),
        (f"http://[0:0:0:0:0:ffff:7f00:1]:{p}/", "loopback"),
        (f"http://user:pw@127.0.0.1:{p}/", "loopback"),
        (f"http://example.com@127.0.0.1:{p}/", "loopback"),
        (f"https://127.0.0.1:{p}/", "loopback"),
        (f"https://localhost:{p}/", "loopback"),
        (f"http://0.0.0.0:{p}/", "unspecified"),
        (f"http://0:{p}/", "unspecified"),
        (f"http://0x0:{p}/", "unspecified"),
        (f"http://169.254.169.254:{p}/latest/meta-data/", "cloud metadata"),
        (f"http://2852039166:{p}/", "cloud metadata"),
        (f"http://[::ffff:169.254.169.254]:{p}/", "cloud metadata"),
        (f"http://10.0.0.1:{p}/", "RFC 1918"),
        (f"http://192.168.0.1:{p}/", "RFC 1918"),
        (f"http://172.16.0.1:{p}/", "RFC 1918"),
        (f"http://100.64.0.1:{p}/", "carrier-grade NAT"),
        (f"http://224.0.0.1:{p}/", "multicast"),
        (f"http://255.255.255.255:{p}/", "broadcast"),
        (f"http://[fe80::1]:{p}/", "link-local"),
        (f"http://[fd00::1]:{p}/", "unique-local"),
        (f"http://[ff02::1]:{p}/", "multicast"),
    ]
    if p6 is not None:
        targets += [
            (f"http://[::1]:{p6}/", "loopback"),
            (f"http://[0:0:0:0:0:0:0:1]:{p6}/", "loopback"),
            (f"http://[::]:{p6}/", "unspecified"),
        ]
    return targets


def _redirected(redirector: str, p: int, p6: int | None) -> list[tuple[str, str]]:
    """Through the allowed redirector to the canary (each hop is checked)."""
    hops = [(f"http://127.0.0.1:{p}/", "302", "loopback"),
            (f"http://localhost:{p}/", "302", "loopback"),
            (f"http://2130706433:{p}/", "301", "loopback"),
            (f"http://0x7f000001:{p}/", "307", "loopback"),
            (f"http://[::ffff:127.0.0.1]:{p}/", "308", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "303", "cloud metadata"),
            (f"http://10.0.0.1:{p}/", "302", "RFC 1918"),
            ("file:///etc/passwd", "302", "only http and https")]
    if p6 is not None:
        hops.append((f"http://[::1]:{p6}/", "302", "loopback"))
    return [(f"{redirector}/redirect?to={to}&status={status}", rule) for to, status, rule in hops]


SCHEMES = [("file:///etc/passwd", "only http and https"),
           ("gopher://127.0.0.1:{p}/_stats", "only http and https"),
           ("ftp://127.0.0.1:{p}/", "only http and https"),
           ("dict://127.0.0.1:{p}/info", "only http and https")]


def _flow(*, url: str, key: str = "probe", **extra: object) -> dict:
    node = {"type": "INTEGRATION", "request": {"method": "POST", "url": url,
                                                "body": {"x": 1}},
            "timeout": 2, "retries": 3, "next": "done", **extra}
    nodes = {"call": node, "done": {"type": "END"}}
    if "on_error" in extra:
        nodes["handled"] = {"type": "END"}
    return {"key": key, "trigger": {"type": "manual"}, "start": "call", "nodes": nodes}


class TestCanary:
    def test_the_canary_counts_a_connection_the_allow_list_lets_through(
        self, runtime, workspace, canary
    ):
        install(runtime, workspace.id, _flow(url=f"http://127.0.0.1:{canary.port}/"))
        _allow(runtime, workspace.id, ["127.0.0.1/32"])
        [run_id] = start(runtime, workspace.id, "probe")

        drain(runtime)

        assert len(canary.accepted) >= 1  # a control: the canary does see connections
        assert "refused" not in (steps_of(runtime, run_id)[1].error or "")

    def test_no_integration_step_reaches_the_canary(self, runtime, workspace, canary,
                                                    redirector):
        targets = (_direct(canary.port, canary.port6)
                   + _redirected(redirector.url, canary.port, canary.port6)
                   + [(u.format(p=canary.port), r) for u, r in SCHEMES])
        runs = {}
        for index, (url, rule) in enumerate(targets):
            # A literal URL per workflow: no template render (and its time cap) in the way.
            install(runtime, workspace.id, _flow(url=url, key=f"probe-{index}"))
            [run_id] = start(runtime, workspace.id, f"probe-{index}")
            runs[run_id] = (url, rule)

        drain(runtime)

        assert len(targets) >= 40
        assert canary.accepted == []
        for run_id, (url, rule) in runs.items():
            run = run_of(runtime, run_id)
            step = steps_of(runtime, run_id)[1]
            assert run.status == "FAILED", url
            assert "refused: " in (step.error or ""), (url, step.error)
            assert rule in (step.error or ""), (url, step.error)
            assert step.output["attempts"] == 1, url  # refusals are never retried
        redirects = [r for r in redirector.requests if r.path.startswith("/redirect")]
        assert len(redirects) == len(_redirected(redirector.url, canary.port, canary.port6))

    def test_no_http_provider_send_reaches_the_canary(self, runtime, canary, redirector):
        targets = (_direct(canary.port, canary.port6)
                   + _redirected(redirector.url, canary.port, canary.port6))
        guard = Guard(allow=runtime.network_allow)

        for url, rule in targets:
            config = parse("sms", {"type": "http", "url": url, "body": {"to": "{{ to }}"}})
            assert isinstance(config, HttpConfig)
            with pytest.raises(DeliveryError) as caught:
                HttpMessageProvider(config, token="tok", guard=guard).send(_message())
            assert not caught.value.retryable, url
            assert str(caught.value).startswith("refused: "), url
            assert rule in str(caught.value), url

        assert len(targets) >= 40
        assert canary.accepted == []

    def test_a_provider_send_through_the_worker_fails_its_attempt_for_good(
        self, runtime, workspace, canary
    ):
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"http://0x7f000001:{canary.port}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}})
        install(runtime, workspace.id, {
            "key": "texts", "trigger": {"type": "manual"}, "start": "send",
            "nodes": {"send": {"type": "SEND_MESSAGE", "channel": "sms", "body": "hi",
                               "to": "+14155550123", "next": "done"},
                      "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "texts")

        drain(runtime)

        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "FAILED"
        assert "0x7f000001 is 127.0.0.1, which is loopback" in (attempt.error or "")
        assert "RELAYFLOW_NETWORK_ALLOW" in (attempt.error or "")
        assert canary.accepted == []


def _message() -> OutboundMessage:
    return OutboundMessage(attempt_id="att-1", channel="sms", to="+14155550123", subject="",
                           body="hi", idempotency_key="relayflow-attempt-1")


class TestOnError:
    def test_a_refused_request_takes_the_on_error_branch(self, runtime, workspace, canary):
        install(runtime, workspace.id, _flow(url=f"http://169.254.169.254:{canary.port}/",
                                             on_error="handled"))
        [run_id] = start(runtime, workspace.id, "probe")

        drain(runtime)

        step = steps_of(runtime, run_id)[1]
        assert run_of(runtime, run_id).status == "COMPLETED"
        assert step.branch == "on_error"
        assert step.output["error"].startswith(
            "refused: 169.254.169.254 is link-local (cloud metadata); allow it with "
            "RELAYFLOW_NETWORK_ALLOW or the workspace's network settings")
        assert steps_of(runtime, run_id)[2].node_id == "handled"


def _allow(runtime, workspace_id, entries: list[str]) -> None:
    with session_scope(runtime.sessions) as session:
        network_service.put(session, workspace_id=workspace_id, allow=entries,
                            now=runtime.clock(), actor="test")


class TestWorkspaceAllowList:
    def test_it_makes_a_refused_target_work_for_that_workspace_only(
        self, runtime, workspace, other_workspace, http_server
    ):
        for ws in (workspace, other_workspace):
            install(runtime, ws.id, _flow(url=f"{http_server.url}/json"))
        [before] = start(runtime, workspace.id, "probe")
        drain(runtime)
        assert run_of(runtime, before).status == "FAILED"

        _allow(runtime, workspace.id, ["127.0.0.1/32"])
        [mine] = start(runtime, workspace.id, "probe")
        [theirs] = start(runtime, other_workspace.id, "probe")
        drain(runtime)

        assert run_of(runtime, mine).status == "COMPLETED"
        assert run_of(runtime, theirs).status == "FAILED"
        assert "loopback" in (steps_of(runtime, theirs)[1].error or "")
        assert len(http_server.requests) == 1

    def test_a_name_entry_allows_that_name_not_the_address(self, runtime, workspace,
                                                           http_server):
        port = http_server.server.server_address[1]
        install(runtime, workspace.id, _flow(url=f"http://localhost:{port}/json", key="name"))
        install(runtime, workspace.id, _flow(url=f"http://127.0.0.1:{port}/json", key="addr"))
        _allow(runtime, workspace.id, ["localhost"])
        [by_name] = start(runtime, workspace.id, "name")
        [by_address] = start(runtime, workspace.id, "addr")

        drain(runtime)

        assert run_of(runtime, by_name).status == "COMPLETED"
        assert run_of(runtime, by_address).status == "FAILED"
        assert [r.headers["Host"] for r in http_server.requests] == [f"localhost:{port}"]

    def test_the_instance_list_applies_to_every_workspace(self, runtime, workspace,
                                                          other_workspace, http_server):
        runtime.network_allow = AllowList.parse("127.0.0.1/32")
        for ws in (workspace, other_workspace):
            install(runtime, ws.id, _flow(url=f"{http_server.url}/json"))
        runs = [start(runtime, ws.id, "probe")[0] for ws in (workspace, other_workspace)]

        drain(runtime)

        assert [run_of(runtime, r).status for r in runs] == ["COMPLETED", "COMPLETED"]

    def test_the_http_provider_uses_the_workspace_list(self, runtime, workspace, http_server):
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/messages",
            "body": {"to": "{{ to }}", "text": "{{ body }}"}, "message_id_path": "body.id"})
        _allow(runtime, workspace.id, ["127.0.0.1"])
        install(runtime, workspace.id, {
            "key": "texts", "trigger": {"type": "manual"}, "start": "send",
            "nodes": {"send": {"type": "SEND_MESSAGE", "channel": "sms", "body": "hi",
                               "to": "+14155550123", "next": "done"},
                      "done": {"type": "END"}}})
        [run_id] = start(runtime, workspace.id, "texts")

        drain(runtime)

        [attempt] = attempts_of(runtime, run_id)
        assert attempt.status == "SENT"
        assert attempt.provider_message_id == "msg-1"
