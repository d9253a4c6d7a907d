"""INTEGRATION requests over real HTTP, with a deadline and retries on transient failures.

Every request goes through the egress guard (delivery/guarded_http.py): a refused target
fails at once, without retries, with the rule in the error. The node's `timeout` is the
deadline of each try as a whole (connect, TLS, request and every read), and only the
first MAX_BODY bytes of an answer are read: the connection is closed there."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import httpx

from relayflow.delivery import guarded_http
from relayflow.delivery.egress import Refused
from relayflow.engine.outcome import HttpCall, HttpResult

MAX_BODY = 64 * 1024
TRANSIENT_STATUS = {429, 500, 502, 503, 504}


def _decode(response: guarded_http.Response) -> Any:
    text = response.text[:MAX_BODY]
    if "json" in response.headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def perform(call: HttpCall, *, idempotency_key: str, guard: guarded_http.Guard,
            sleep: Any = time.sleep, traceparent: str | None = None) -> HttpResult:
    """The call, retried as the node says. `traceparent` (its step's span, when tracing is
    on) is sent unless the node sets that header itself."""
    headers = {"Idempotency-Key": idempotency_key, **call.headers}
    if traceparent and not any(name.lower() == "traceparent" for name in headers):
        headers["traceparent"] = traceparent
    kwargs: dict[str, Any] = {}
    if call.body is not None:
        if isinstance(call.body, str):
            kwargs["content"] = call.body
        else:
            kwargs["json"] = call.body
    started = time.monotonic()
    attempts = 0
    result = HttpResult(status=None, error="not attempted", error_class="NotAttempted")
    while attempts <= call.retries:
        attempts += 1
        try:
            response = guarded_http.request(call.method, call.url, guard=guard,
                                            timeout=call.timeout, headers=headers,
                                            max_body=MAX_BODY, **kwargs)
        except Refused as exc:  # the policy will not change on a retry
            result = HttpResult(status=None, error=str(exc), error_class="Refused",
                                attempts=attempts)
            break
        except httpx.InvalidURL as exc:
            result = HttpResult(status=None, error=f"invalid URL: {exc}",
                                error_class="InvalidURL", attempts=attempts)
            break
        except httpx.TimeoutException:
            result = HttpResult(status=None, error=f"timed out after {call.timeout:g}s",
                                error_class="Timeout", attempts=attempts)
        except httpx.HTTPError as exc:
            result = HttpResult(status=None, error=f"{type(exc).__name__}: {exc}",
                                error_class=type(exc).__name__, attempts=attempts)
        else:
            result = HttpResult(status=response.status_code,
                                headers=dict(response.headers), body=_decode(response),
                                attempts=attempts)
            if response.status_code not in TRANSIENT_STATUS:
                break
        if attempts <= call.retries:
            sleep(min(5.0, 0.2 * 2 ** (attempts - 1)) * (0.5 + random.random() / 2))
    elapsed = int((time.monotonic() - started) * 1000)
    return HttpResult(status=result.status, headers=result.headers, body=result.body,
                      error=result.error, error_class=result.error_class, attempts=attempts,
                      elapsed_ms=elapsed)
