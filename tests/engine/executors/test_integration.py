from __future__ import annotations

from typing import Any

import pytest

from relayflow.engine.outcome import Advance, Fail, HttpCall, HttpResult, Perform
from relayflow.engine.stepper import resume, step
from tests.engine.builders import graph_of, make_ctx

TOKEN = "tok-9f8e7d6c5b4a"
SIGNING = "sig-0123456789"


def _graph(**over: Any) -> Any:
    node = {
        "type": "INTEGRATION",
        "request": {
            "method": "post",
            "url": "https://crm.example.com/accounts/{{ contact.external_id }}"
                   "?sig={{ secrets.SIG }}",
            "headers": {"Authorization": "Bearer {{ secrets.CRM_TOKEN }}",
                        "X-Plan": "{{ contact.plan }}"},
            "body": {"email": "{{ contact.email }}", "auth": ["{{ secrets.CRM_TOKEN }}", 7],
                     "source": "relayflow"},
        },
        "capture": {"tier": "body.account.tier", "code": "status",
                    "first_item": "body.items.0.id", "nothing": "body.account.missing.deeper",
                    "past_end": "body.items.5.id", "request_id": "headers.x-request-id"},
        "timeout": 5,
        "retries": 2,
        "next": "welcome",
    }
    return graph_of({"lookup": {**node, **over}})


def _ctx() -> Any:
    return make_ctx(secrets={"CRM_TOKEN": TOKEN, "SIG": SIGNING})


def _call(graph: Any = None) -> HttpCall:
    outcome = step(graph or _graph(), "lookup", _ctx())
    assert isinstance(outcome, Perform)
    assert isinstance(outcome.effect, HttpCall)
    return outcome.effect


class TestStep:
    def test_renders_method_url_headers_and_body_with_real_secrets(self) -> None:
        call = _call()

        assert call.method == "POST"
        assert call.url == f"https://crm.example.com/accounts/acct-42?sig={SIGNING}"
        assert call.headers == {"Authorization": f"Bearer {TOKEN}", "X-Plan": "pro"}
        assert call.body == {"email": "ada@example.com", "auth": [TOKEN, 7], "source": "relayflow"}
        assert (call.timeout, call.retries) == (5.0, 2)

    def test_stored_copy_carries_markers_instead_of_secrets(self) -> None:
        call = _call()

        assert call.stored == {
            "method": "POST",
            "url": "https://crm.example.com/accounts/acct-42?sig=[secret:SIG]",
            "headers": {"Authorization": "Bearer [secret:CRM_TOKEN]", "X-Plan": "pro"},
            "body": {"email": "ada@example.com", "auth": ["[secret:CRM_TOKEN]", 7],
                     "source": "relayflow"},
        }
        assert TOKEN not in repr(call.stored)
        assert SIGNING not in repr(call.stored)

    def test_defaults_to_get_without_body_ten_second_timeout_and_no_retries(self) -> None:
        graph = graph_of({"lookup": {"type": "INTEGRATION",
                                     "request": {"url": "https://x.example.com/ping"},
                                     "next": "done"}})

        call = _call(graph)

        assert (call.method, call.headers, call.body) == ("GET", {}, None)
        assert (call.timeout, call.retries) == (10.0, 0)

    def test_secret_missing_from_the_workspace_fails(self) -> None:
        outcome = step(_graph(), "lookup", make_ctx(secrets={"CRM_TOKEN": TOKEN}))

        assert isinstance(outcome, Fail)
        assert outcome.reason == ("UndefinedError: request.url: 'dict object' has no attribute "
                                  "'SIG' in {{ secrets.SIG }}")

    def test_secrets_internals_are_refused(self) -> None:
        graph = _graph(request={"url": "https://x.example.com/{{ secrets.__class__ }}"})

        outcome = step(graph, "lookup", _ctx())

        assert isinstance(outcome, Fail)
        assert outcome.reason.startswith("SecurityError")


class TestResume:
    def test_success_captures_paths_and_status(self) -> None:
        result = HttpResult(
            status=200,
            headers={"x-request-id": "req-1"},
            body={"account": {"tier": "gold"}, "items": [{"id": "i-1"}, {"id": "i-2"}]},
        )

        outcome = resume(_graph(), "lookup", _ctx(), result)

        assert outcome == Advance(
            next="welcome",
            branch="next",
            output={"tier": "gold", "code": 200, "first_item": "i-1", "nothing": None,
                    "past_end": None, "request_id": "req-1", "status": 200},
        )

    def test_success_with_non_json_body_captures_none(self) -> None:
        result = HttpResult(status=201, body="created")

        outcome = resume(_graph(), "lookup", _ctx(), result)

        assert isinstance(outcome, Advance)
        assert outcome.output["tier"] is None
        assert outcome.output["first_item"] is None
        assert outcome.output["status"] == 201

    def test_success_without_capture_records_the_status(self) -> None:
        graph = _graph()
        graph = graph_of({"lookup": {k: v for k, v in graph.nodes["lookup"].config.items()
                                     if k != "capture"}})

        outcome = resume(graph, "lookup", _ctx(), HttpResult(status=204))

        assert outcome == Advance(next="welcome", branch="next", output={"status": 204})

    @pytest.mark.parametrize("status", [300, 404, 500, 503])
    def test_non_2xx_fails_naming_attempts(self, status: int) -> None:
        result = HttpResult(status=status, body={"error": "nope"}, attempts=3)

        outcome = resume(_graph(), "lookup", _ctx(), result)

        assert isinstance(outcome, Fail)
        assert outcome.reason == f"request failed after 3 attempt(s): HTTP {status}"
        assert outcome.output == {"status": status, "error": f"HTTP {status}", "attempts": 3}
        assert outcome.error_class == f"HTTP {status}"

    def test_transport_error_fails_with_the_error(self) -> None:
        result = HttpResult(status=None, error="ConnectTimeout: timed out",
                            error_class="ConnectTimeout", attempts=1)

        outcome = resume(_graph(), "lookup", _ctx(), result)

        assert isinstance(outcome, Fail)
        assert outcome.reason == "request failed after 1 attempt(s): ConnectTimeout: timed out"
        assert outcome.error_class == "ConnectTimeout"

    def test_failure_with_on_error_advances_to_it(self) -> None:
        result = HttpResult(status=502, attempts=2)

        outcome = resume(_graph(on_error="fallback"), "lookup", _ctx(), result)

        assert outcome == Advance(next="fallback", branch="on_error",
                                  output={"status": 502, "error": "HTTP 502", "attempts": 2})

    def test_success_with_on_error_still_takes_next(self) -> None:
        outcome = resume(_graph(on_error="fallback"), "lookup", _ctx(), HttpResult(status=200))

        assert isinstance(outcome, Advance)
        assert outcome.next == "welcome"
