"""Provider credentials never reach the API: SMTP password and HTTP auth token canaries."""

from __future__ import annotations

import json

from tests.support import smtpserver
from tests.support.flows import set_provider, set_secret
from tests.support.worker import drain
from tests.web.api.definitions import create, trigger

SMTP_PASSWORD = "smtp-api-canary-8c2f"
SMS_TOKEN = "sms-api-canary-41d0"


def _every_response(client, run_ids: list[str]) -> str:
    texts = [client.get("/api/v1/deliveries").text, client.get("/api/v1/providers").text,
             client.get("/api/v1/audit").text]
    for item in client.get("/api/v1/deliveries").json()["items"]:
        texts.append(client.get(f"/api/v1/deliveries/{item['id']}").text)
    texts += [client.get(f"/api/v1/runs/{run_id}").text for run_id in run_ids]
    return "\n".join(texts)


def test_credentials_appear_in_no_api_output(client, runtime, workspace, http_server,
                                            tmp_path):
    server = smtpserver.start(tmp_path, login=("ops", SMTP_PASSWORD))
    try:
        set_secret(runtime, workspace.id, "SMTP_PASS", SMTP_PASSWORD)
        set_secret(runtime, workspace.id, "SMS_TOKEN", SMS_TOKEN)
        set_provider(runtime, workspace.id, "email", {
            "type": "smtp", "host": "localhost", "port": server.port, "tls": "starttls",
            "username": "ops", "password_secret": "SMTP_PASS", "from": "ops@relay.test",
            "ca_file": server.ca_file})
        set_provider(runtime, workspace.id, "sms", {
            "type": "http", "url": f"{http_server.url}/echo", "auth_header_secret": "SMS_TOKEN",
            "message_id_path": None})
        create(client, {"key": "both", "trigger": {"type": "manual"}, "start": "mail",
                        "nodes": {
                            "mail": {"type": "SEND_MESSAGE", "channel": "email",
                                     "subject": "Hi", "body": "Hello", "next": "text"},
                            "text": {"type": "SEND_MESSAGE", "channel": "sms",
                                     "to": "+14155550123", "body": "Hello", "next": "done"},
                            "done": {"type": "END"}}})
        run_id = trigger(client, "both")
        drain(runtime)
        statuses = [a["status"] for a in client.get("/api/v1/deliveries").json()["items"]]
        assert statuses == ["SENT", "SENT"]
        # the HTTP provider echoed the Authorization header back: it must come out redacted
        echoed = json.loads(http_server.requests[0].body or "{}")
        assert echoed  # the provider really received a body
        assert server.auth_attempts == [("ops", SMTP_PASSWORD)]
        output = _every_response(client, [run_id])
        assert SMTP_PASSWORD not in output
        assert SMS_TOKEN not in output
        assert "[secret:SMS_TOKEN]" in output
    finally:
        server.close()
