"""Secret canaries: runs that use secrets in request headers, URLs and bodies, against
servers and providers that echo them back in every encoding, leave 0 occurrences of any
form of any secret in the database or the logs.

The forms searched are computed here, independently of the redaction code: raw,
percent-encoded (quote, quote with '/' kept, quote_plus), base64 (standard and URL-safe,
padded and not, and the characters that encode only the secret at each of the 3 byte
alignments inside a longer base64 run), JSON-escaped (\\uXXXX and UTF-8), HTML-escaped
(html.escape and Jinja's escaping) and Python-repr escaped (str and bytes). The web
surfaces (API and pages) are searched by tests/web/test_secret_canary_pages.py, which
runs the same scenario.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import markupsafe
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Text, cast, select, text
from sqlalchemy.orm import Session

from relayflow.services import contact as contact_service
from relayflow.services import provider as provider_service
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.services.search import words
from relayflow.storage.db import session_scope
from relayflow.storage.models import Base
from tests.conftest import TEST_SECRET_KEY
from tests.support import httpserver, smtpserver
from tests.support.flows import attempts_of, install, run_of, set_secret, steps_of
from tests.support.processes import stop, wait_until
from tests.support.worker import drain

# Each canary holds characters every encoding treats differently: space, + / = " \ & ? and,
# where the transport allows it (headers are ASCII), non-ASCII.
CANARIES = {
    "HEADER_TOKEN": 'hdr canary~+A/9f="q\\t" &x?y<z>\'%41 7f3a9b2e41d8',
    "URL_TOKEN": 'url canary+B/é€😀="q\\" &k=v?x 1c0e5d77aa',
    "BODY_TOKEN": 'body canary+C/ü="q\\"&?\t<b> ñ 55b2c3d4e5',
    "BASIC_PASS": 'basic canary+D/ø="&?\\" 0d9e8f7a6b',
    # A token pasted with its line end: the HTTP client refuses the header and quotes it.
    "NEWLINE_TOKEN": 'nl canary~+E/="q\\" &? 4b5c6d7e8f\n',
    "SMS_TOKEN": 'sms canary+F/="\\&?\' 3f4e5a6b7c',
    "SMTP_PASS": 'smtp canary+G/é="\\&? 9a8b7c6d5e',
}
# HTTP Basic credentials are stored encoded; the server decodes and echoes "api:<pass>".
CANARIES["BASIC_AUTH"] = base64.b64encode(f"api:{CANARIES['BASIC_PASS']}".encode()).decode()
PHONE = "+14155550123"
EMAIL = "canary@example.com"
SMTP_LOGIN = "ops"


def forms_of(value: str) -> dict[str, str]:
    """Every spelling of a secret a leak could take, by name (some may coincide)."""
    data = value.encode()
    forms = {
        "raw": value, "quote": quote(value, safe=""), "quote_slash": quote(value),
        "quote_plus": quote_plus(value), "json": json.dumps(value)[1:-1],
        "json_utf8": json.dumps(value, ensure_ascii=False)[1:-1],
        "html": html.escape(value), "html_jinja": str(markupsafe.escape(value)),
        "repr": repr(value)[1:-1], "bytes_repr": repr(data)[2:-1],
    }
    for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
        whole = encode(data).decode()
        forms[name], forms[f"{name}_nopad"] = whole, whole.rstrip("=")
        for shift in range(3):
            text = encode(b"\xa5" * shift + data).decode()
            start, end = -(-8 * shift // 6), 8 * (shift + len(data)) // 6
            forms[f"{name}_at_{shift}"] = text[start:end]
    return forms


def all_forms() -> dict[tuple[str, str], str]:
    return {(secret, form): text for secret, value in CANARIES.items()
            for form, text in forms_of(value).items()}


@dataclass
class Search:
    """Where the canaries (or other `needles`: name and form -> text) were looked for, and
    what was found."""

    places: int = 0
    found: list[str] = field(default_factory=list)
    needles: dict[tuple[str, str], str] = field(default_factory=all_forms)

    def look(self, where: str, text: str) -> None:
        self.places += 1
        for (secret, form), needle in self.needles.items():
            if needle in text:
                at = text.index(needle)
                self.found.append(f"{secret} as {form} in {where}: "
                                  f"...{text[max(0, at - 60):at + len(needle) + 20]!r}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def index_words(session: Session) -> set[str]:
    """Every word the run search index holds (migration 0024): SQLite's FTS5 vocabulary,
    PostgreSQL's tsvectors."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS temp.run_search_words "
                             "USING fts5vocab(main, run_search, 'row')"))
        return set(session.scalars(text("SELECT term FROM temp.run_search_words")))
    return set(session.scalars(text("SELECT word FROM ts_stat('SELECT words FROM run_search')")))


def _search_index(session: Session, search: Search) -> None:
    """The search index, which no model declares: its documents (SQLite keeps them), and
    its words, where a needle is its longest word when that is long enough to be its own
    (the index keeps words, not the punctuation between them)."""
    if session.get_bind().dialect.name == "sqlite":
        search.look("run_search.doc", "\n".join(session.scalars(text(
            "SELECT doc FROM run_search"))))
    indexed = index_words(session)
    search.places += 1
    for (secret, form), needle in search.needles.items():
        longest = max(words(needle), key=len, default="")
        if len(longest) >= 8 and longest in indexed:
            search.found.append(f"{secret} as {form}: its word {longest!r} in the search index")


def search_database(runtime: Runtime, search: Search) -> None:
    """Every column of every table, as the database spells it and as decoded JSON, and the
    run search index."""
    with session_scope(runtime.sessions) as session:
        _search_index(session, search)
        for table in Base.metadata.sorted_tables:
            columns = list(table.columns)
            as_text = session.execute(select(*[cast(c, Text) for c in columns])).all()
            decoded = session.execute(select(*columns)).all()
            for index, column in enumerate(columns):
                texts = [row[index] for row in as_text if row[index] is not None]
                values = [row[index] for row in decoded if row[index] is not None]
                strings = [s for v in values for s in _strings(v)]
                dumped = [json.dumps(v, ensure_ascii=a) for v in values
                          if isinstance(v, dict | list) for a in (True, False)]
                search.look(f"{table.name}.{column.name}", "\n".join(texts + strings + dumped))


# --- the scenario ---------------------------------------------------------------------------


def _request(url: str, **headers: str) -> dict[str, Any]:
    return {"method": "POST", "url": url,
            "headers": {"Authorization": "Bearer {{ secrets.HEADER_TOKEN }}", **headers},
            "body": {"token": "{{ secrets.BODY_TOKEN }}",
                     "list": ["{{ secrets.URL_TOKEN }}", "x {{ secrets.HEADER_TOKEN }} y"]}}


def _query() -> str:
    return "?enc={{ secrets.URL_TOKEN | urlencode }}&body={{ secrets.BODY_TOKEN | urlencode }}"


def _flow(key: str, node: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"key": key, "trigger": {"type": "manual"}, "start": "call",
            "nodes": {"call": {"type": "INTEGRATION", "next": "done", **node}, **more,
                      "done": {"type": "END"}}}


def workflows(base: str, closed_port: int) -> list[dict[str, Any]]:
    """Every way a run can carry a secret out and get it echoed back."""
    calls = _flow("canary-calls", {
        "request": _request(f"{base}/reflect/200{_query()}"), "next": "basic",
        "capture": {"auth": "body.headers.Authorization", "sent": "body.body",
                    "query": "body.query.enc", "encoded": "body.encoded",
                    "header_b64": "headers.x-reflect-b64_1-20"}},
        basic={"type": "INTEGRATION", "next": "text",
               "request": {"method": "GET", "url": f"{base}/reflect/201",
                           "headers": {"Authorization": "Basic {{ secrets.BASIC_AUTH }}"}},
               "capture": {"basic": "body.basic", "encoded": "body.encoded.basic"}},
        text={"type": "SEND_MESSAGE", "channel": "sms", "next": "mail",
              "body": "got {{ steps.call.auth }} {{ steps.basic.basic }} {{ steps.call.query }}"},
        mail={"type": "SEND_MESSAGE", "channel": "email", "subject": "canary {{ steps.call.sent }}",
              "body": "{{ steps.basic.encoded }} {{ steps.call.header_b64 }}", "next": "done"})
    server_error = _flow("canary-500", {"request": _request(f"{base}/reflect/500{_query()}"),
                                        "retries": 1})
    refused = _flow("canary-401", {"request": _request(f"{base}/reflect/401{_query()}"),
                                   "on_error": "done"})
    unreachable = _flow("canary-unreachable", {
        "request": _request(f"http://127.0.0.1:{closed_port}/x{_query()}")})
    # urlsplit refuses an unclosed IPv6 bracket: the egress guard quotes the whole URL.
    bad_url = _flow("canary-bad-url", {"request": _request(f"http://[127.0.0.1/x{_query()}")})
    bad_header = _flow("canary-newline", {"request": _request(
        f"{base}/reflect/200{_query()}", Authorization="Bearer {{ secrets.NEWLINE_TOKEN }}")})
    notify = {"key": "canary-notify", "trigger": {"type": "manual"}, "start": "text",
              "nodes": {"text": {"type": "SEND_MESSAGE", "channel": "sms", "body": "hi",
                                 "next": "mail"},
                        "mail": {"type": "SEND_MESSAGE", "channel": "email", "subject": "hi",
                                 "body": "hi", "next": "done"},
                        "done": {"type": "END"}}}
    return [calls, server_error, refused, unreachable, bad_url, bad_header, notify]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _EchoingAuthRefusal:
    """An SMTP server that refuses AUTH quoting what it got: the login, the password and
    the AUTH PLAIN blob (base64 of "\\0login\\0password")."""

    def __init__(self) -> None:
        self.port = _closed_port()
        self.attempts: list[str] = []

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            login, password = auth_data.login.decode(), auth_data.password.decode()
            self.attempts.append(password)
            blob = base64.b64encode(b"\0" + auth_data.login + b"\0" + auth_data.password)
            return AuthResult(success=False, handled=False,
                              message=f"535 5.7.8 refused {login}:{password} ({blob.decode()})")

        self.controller = Controller(_Accept(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_require_tls=False,
                                     enable_SMTPUTF8=True)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK"


def _start(runtime: Runtime, workspace_id: uuid.UUID, key: str) -> uuid.UUID:
    with session_scope(runtime.sessions) as session:
        workflow = workflow_service.get(session, workspace_id=workspace_id, key=key)
        contact = contact_service.resolve(session, workspace_id=workspace_id,
                                          spec={"email": EMAIL, "phone": PHONE},
                                          now=runtime.clock())
        return run_service.enroll(session, workflow=workflow, contact=contact,
                                  trigger_type="manual", event={}, now=runtime.clock()).run.id


def _providers(runtime: Runtime, workspace_id: uuid.UUID, *, sms_url: str,
               email: dict[str, Any]) -> None:
    with session_scope(runtime.sessions) as session:
        provider_service.put(session, workspace_id=workspace_id, channel="sms", now=runtime.clock(),
                             data={"type": "http", "url": sms_url,
                                   "auth_header_secret": "SMS_TOKEN", "message_id_path": None},
                             network_allow=runtime.network_allow)
        provider_service.put(session, workspace_id=workspace_id, channel="email",
                             now=runtime.clock(), data=email, network_allow=runtime.network_allow)


@dataclass
class Scenario:
    runs: dict[str, uuid.UUID]
    smtp_passwords: list[str]


def run_scenario(runtime: Runtime, workspace_id: uuid.UUID,
                 http_server: httpserver.TestHttpServer, tmp_path: Path,
                 settle: Callable[[list[uuid.UUID]], None] | None = None) -> Scenario:
    """Store the canaries, run every workflow with the worker: first against providers that
    accept (an SMTP sink with AUTH, an HTTP provider echoing the request), then against
    providers that refuse and quote the credentials back. `settle` waits for the given runs
    to finish (default: drain them with the worker code in this process)."""
    settle = settle or (lambda _runs: drain(runtime) and None)
    for name, value in CANARIES.items():
        set_secret(runtime, workspace_id, name, value)
    for definition in workflows(http_server.url, _closed_port()):
        install(runtime, workspace_id, definition)
    sink = smtpserver.start(tmp_path, login=(SMTP_LOGIN, CANARIES["SMTP_PASS"]))
    refusing = _EchoingAuthRefusal()
    try:
        _providers(runtime, workspace_id, sms_url=f"{http_server.url}/reflect/201", email={
            "type": "smtp", "host": "localhost", "port": sink.port, "tls": "starttls",
            "username": SMTP_LOGIN, "password_secret": "SMTP_PASS", "from": "ops@relay.test",
            "ca_file": sink.ca_file})
        keys = ["canary-calls", "canary-500", "canary-401", "canary-unreachable",
                "canary-bad-url", "canary-newline"]
        runs = {key: _start(runtime, workspace_id, key) for key in keys}
        settle(list(runs.values()))
        _providers(runtime, workspace_id, sms_url=f"{http_server.url}/reflect/400", email={
            "type": "smtp", "host": "127.0.0.1", "port": refusing.port, "tls": "none",
            "username": SMTP_LOGIN, "password_secret": "SMTP_PASS", "from": "ops@relay.test"})
        runs["canary-notify"] = _start(runtime, workspace_id, "canary-notify")
        settle([runs["canary-notify"]])
    finally:
        sink.close()
        refusing.close()
    return Scenario(runs, [p for _, p in sink.auth_attempts] + refusing.attempts)


def check_the_secrets_went_out(runtime: Runtime, scenario: Scenario,
                               http_server: httpserver.TestHttpServer) -> None:
    """The scenario really used every canary, and servers really echoed them."""
    sent = "\n".join(" ".join([r.path, *r.headers.values(), r.body])
                     for r in http_server.requests)
    assert CANARIES["HEADER_TOKEN"] in sent
    assert CANARIES["BASIC_AUTH"] in sent
    assert CANARIES["SMS_TOKEN"] in sent
    assert quote_plus(CANARIES["URL_TOKEN"]) in sent or quote(CANARIES["URL_TOKEN"]) in sent
    assert json.dumps(CANARIES["BODY_TOKEN"], ensure_ascii=False)[1:-1] in sent
    assert set(scenario.smtp_passwords) == {CANARIES["SMTP_PASS"]}  # accepted, then refused
    assert len(scenario.smtp_passwords) >= 2
    statuses = {key: run_of(runtime, run_id).status for key, run_id in scenario.runs.items()}
    assert statuses == {"canary-calls": "COMPLETED", "canary-500": "FAILED",
                        "canary-401": "COMPLETED", "canary-unreachable": "FAILED",
                        "canary-bad-url": "FAILED",
                        "canary-newline": "FAILED", "canary-notify": "COMPLETED"}


def check_the_echoes_were_redacted(runtime: Runtime, scenario: Scenario) -> None:
    """The echoes are stored, redacted: markers where the secrets were, not nothing."""
    assert "[secret:NEWLINE_TOKEN]" in (run_of(runtime, scenario.runs["canary-newline"]).error
                                         or "")
    assert "[secret:URL_TOKEN]" in (run_of(runtime, scenario.runs["canary-bad-url"]).error or "")
    calls = steps_of(runtime, scenario.runs["canary-calls"])
    assert "[secret:HEADER_TOKEN]" in calls[1].output["auth"]  # captured, then redacted
    assert "[secret:BASIC_PASS]" in calls[2].output["basic"]
    attempts = {a.channel: a for a in attempts_of(runtime, scenario.runs["canary-notify"])}
    assert attempts["sms"].status == attempts["email"].status == "FAILED"
    assert "[secret:SMTP_PASS]" in (attempts["email"].error or "")
    assert "[secret:SMS_TOKEN]" in json.dumps(attempts["sms"].provider_response)


def canary_counts() -> tuple[int, int]:
    """(canaries, distinct forms searched)."""
    return len(CANARIES), len(set(all_forms().values()))


# --- tests -----------------------------------------------------------------------------------


def test_every_canary_differs_in_every_main_encoding() -> None:
    for name, value in CANARIES.items():
        if name == "BASIC_AUTH":  # derived from BASIC_PASS: base64 has no HTML specials
            continue
        forms = forms_of(value)
        main = [forms[k] for k in ("raw", "quote", "quote_plus", "json", "b64", "b64url",
                                   "html", "b64_at_1", "b64_at_2")]
        assert len(set(main)) == len(main), name
        assert len(value) >= 24, name
    assert canary_counts() == (8, 120)  # the figure reported: canaries x distinct forms


def _report(search: Search, where: str) -> None:
    canaries, forms = canary_counts()
    print(f"\nsecret canaries ({where}): {canaries} canaries x {forms} distinct forms "  # noqa: T201
          f"searched in {search.places} places: {len(search.found)} found")
    for item in search.found[:20]:
        print(f"  leak: {item}")  # noqa: T201


def test_no_form_of_any_canary_in_the_database_or_logs(runtime, workspace, http_server,
                                                       tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    scenario = run_scenario(runtime, workspace.id, http_server, tmp_path)
    check_the_secrets_went_out(runtime, scenario, http_server)

    search = Search()
    search_database(runtime, search)
    # The SMTP test servers log on "mail.log": the servers' side, not relayflow's.
    records = [r for r in caplog.records if not r.name.startswith("mail.log")]
    for record in records:
        search.look(f"log {record.name}", f"{record.getMessage()} {record.args!r}")
    search.look("log text", "\n".join(caplog.handler.format(r) for r in records))

    _report(search, f"database and {len(records)} log records, worker in this process")
    assert search.found == []
    assert search.places >= 150
    check_the_echoes_were_redacted(runtime, scenario)


def _debug_worker(settings) -> subprocess.Popen[bytes]:
    """A real worker process logging everything (DEBUG) to the stderr we read."""
    env = {**os.environ, "RELAYFLOW_DATABASE_URL": settings.database_url,
           "RELAYFLOW_SECRET_KEY": TEST_SECRET_KEY, "RELAYFLOW_POLL_SECONDS": "0.05",
           "RELAYFLOW_LOG_LEVEL": "DEBUG", "RELAYFLOW_NETWORK_ALLOW": settings.network_allow}
    env.pop("RELAYFLOW_FAULT", None)
    return subprocess.Popen([sys.executable, "-m", "relayflow", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_no_form_of_any_canary_in_a_worker_process_log(settings, runtime, workspace,
                                                       http_server, tmp_path) -> None:
    worker = _debug_worker(settings)

    def settle(run_ids: list[uuid.UUID]) -> None:
        wait_until(lambda: all(run_of(runtime, r).status in run_service.TERMINAL
                               for r in run_ids), timeout=30, what="the canary runs")

    try:
        scenario = run_scenario(runtime, workspace.id, http_server, tmp_path, settle)
    finally:
        stop(worker)
    stderr = worker.stderr.read().decode(errors="replace") if worker.stderr else ""
    check_the_secrets_went_out(runtime, scenario, http_server)

    search = Search()
    search_database(runtime, search)
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        search.look(f"worker stderr line {number + 1}", line)
    search.look("worker stderr", stderr)

    _report(search, f"database and a DEBUG worker's stderr ({len(lines)} lines)")
    assert search.found == []
    check_the_echoes_were_redacted(runtime, scenario)
    assert " started" in stderr  # the log really was captured
