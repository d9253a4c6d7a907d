"""Messages through an HTTP API (SMS gateways, chat and messaging APIs).

The request body is a template over the rendered message; 2xx is success and the
provider's message id is read from the response at `message_id_path`. Every request
carries an Idempotency-Key derived from the attempt id, so a provider that honours it
drops a repeat sent after a crash.

The request goes through the egress guard (guarded_http.py): a target the policy refuses
fails the attempt for good (retrying cannot change the answer). A 429 or 5xx is retried, not
before the provider's Retry-After (either form; see retry.py).
"""

from __future__ import annotations

from typing import Any

import httpx

from relayflow.delivery import envelope, guarded_http
from relayflow.delivery.base import DeliveryError, OutboundMessage, SendResult
from relayflow.delivery.config import HttpConfig
from relayflow.delivery.egress import Refused
from relayflow.delivery.retry import retry_after_seconds
from relayflow.engine import templates
from relayflow.engine.executors.integration import resolve_path

MAX_BODY = 16 * 1024
# Settings.provider_timeout_seconds: no provider call lasts longer, whatever it configures.
DEFAULT_DEADLINE = 30.0

class HttpMessageProvider:
    name = "http"

    def __init__(self, config: HttpConfig, *, token: str | None,
                 guard: guarded_http.Guard | None = None,
                 deadline: float = DEFAULT_DEADLINE) -> None:
        self.config = config
        self._token = token
        # No guard given: the default policy (private and loopback targets refused).
        self._guard = guard or guarded_http.Guard()
        # The whole call (connect, TLS, request, every read) ends by the configured timeout
        # or the instance's deadline, whichever is shorter.
        self._timeout = min(config.timeout, deadline)

    def _headers(self, message: OutboundMessage) -> dict[str, str]:
        headers = {"Idempotency-Key": message.idempotency_key}
        if self._token:
            scheme = self.config.auth_scheme
            headers[self.config.auth_header] = f"{scheme} {self._token}" if scheme else self._token
        return headers

    def send(self, message: OutboundMessage) -> SendResult:
        # One recipient, one-line subject: a gateway may well split `to` on commas too.
        envelope.check(channel=message.channel, to=message.to, subject=message.subject)
        variables = {"to": message.to, "subject": message.subject, "body": message.body,
                     "html": message.html or "", "attempt_id": message.attempt_id,
                     "channel": message.channel}
        try:
            payload = templates.render_value(self.config.body, variables)
        except Exception as exc:  # a template error is the configuration's fault: permanent
            raise DeliveryError(f"provider body template failed: {exc}", retryable=False) from exc
        try:
            response = guarded_http.request(
                self.config.method, self.config.url, guard=self._guard, json=payload,
                headers=self._headers(message), timeout=self._timeout, max_body=MAX_BODY)
        except Refused as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        except httpx.InvalidURL as exc:
            raise DeliveryError(f"invalid provider URL: {exc}", retryable=False) from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"provider timed out after {self._timeout:g}s",
                                retryable=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"provider unreachable: {type(exc).__name__}: {exc}",
                                retryable=True) from exc
        body = _decode(response)
        summary: dict[str, Any] = {"status": response.status_code, "body": body}
        if response.status_code == 429 or response.status_code >= 500:
            summary.update(_retry_after(response))
            raise DeliveryError(f"provider answered HTTP {response.status_code}", retryable=True,
                                response=summary)
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"provider refused with HTTP {response.status_code}",
                                retryable=False, response=summary)
        found = (resolve_path({"status": response.status_code, "body": body},
                              self.config.message_id_path)
                 if self.config.message_id_path else None)
        return SendResult(provider_message_id=None if found is None else str(found),
                          response=summary)


def _retry_after(response: guarded_http.Response) -> dict[str, Any]:
    """`retry_after`: the whole seconds the provider asked to wait, counted now, when the
    answer was received (an HTTP-date from its own `Date`), so the retry is scheduled from
    this moment and never sooner; `retry_after_header` keeps any other spelling as sent."""
    raw = response.headers.get("Retry-After")
    if not raw:
        return {}
    seconds = retry_after_seconds(raw, date=response.headers.get("Date"))
    found: dict[str, Any] = {} if seconds is None else {"retry_after": seconds}
    if raw.strip() != str(seconds):
        found["retry_after_header"] = raw[:200]
    return found


def _decode(response: guarded_http.Response) -> Any:
    text = response.text[:MAX_BODY]
    try:
        return response.json() if "json" in response.headers.get("content-type", "") else text
    except ValueError:
        return text
