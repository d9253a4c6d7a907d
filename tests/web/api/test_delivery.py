"""GET /api/v1/deliveries and /deliveries/{id}, and the run detail's links to its attempts,
against one seeded history with known answers.

Real attempts come from real runs (SEND_MESSAGE through the outbox, drained by the worker).
Statuses a run cannot reach yet — DELIVERED and BOUNCED (provider callbacks), SUPPRESSED,
transient failures with their retries, manual resends — are inserted as rows, because the
code that produces them is still being built; the listing must show them all the same.

    name  how       channel  status      contact       workflow    created          links
    d1    run       email    SENT        ada           onboarding  NOW - 40d
    x4    inserted  email    FAILED      ada           onboarding  NOW - 20d        attempt 1
    x5    inserted  email    SENT        ada           onboarding  NOW - 20d + 1m   retry_of x4
    d2    run       email    FAILED*     bob           onboarding  NOW - 10d
    x7    inserted  email    SENT        bob           onboarding  NOW - 10d + 1m   retry_of d2,
                                                                                   d2's run+step
    x1    inserted  email    DELIVERED   bob           onboarding  NOW - 8d
    d3    run       sms      SENT        +14155550123  texter      NOW - 3d
    x2    inserted  email    BOUNCED     carol         onboarding  NOW - 1d
    d4    run       email    SENT        ada           onboarding  NOW - 5h
    x3    inserted  sms      SUPPRESSED  +14155550123  texter      NOW - 30m
    x6    inserted  email    QUEUED      ada           (none)      NOW - 10m        resend_of x5

    * d2 is sent by its run, then marked FAILED (a transient failure the outbox never has).
One more attempt, in workspace globex, must never show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, update

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services.runtime import Runtime, SecretCipher
from relayflow.storage.db import make_engine, make_sessionmaker, session_scope
from relayflow.storage.ids import new_id
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories import workflow as workflow_repo
from relayflow.web.app import create_app
from tests.conftest import TEST_SECRET_KEY, WorkspaceHandle, make_workspace
from tests.support.worker import drain
from tests.web.api.definitions import create, straight
from tests.web.api.history import NOW, freeze, fresh_database

ADA, BOB, CAROL, PHONE = "ada@example.com", "bob@example.com", "carol@example.com", "+14155550123"
NEWEST_FIRST = ["x6", "x3", "d4", "x2", "d3", "x1", "x7", "d2", "x5", "x4", "d1"]
STATUSES = ("QUEUED", "SENT", "DELIVERED", "BOUNCED", "FAILED", "SUPPRESSED")
ALL_COUNTS = {"ALL": 11, "QUEUED": 1, "SENT": 5, "DELIVERED": 1, "BOUNCED": 1, "FAILED": 2,
              "SUPPRESSED": 1}
ZERO = dict.fromkeys(("ALL", *STATUSES), 0)


def counts(**given: int) -> dict[str, int]:
    return {**ZERO, **given, "ALL": sum(given.values())}


def texter(key: str = "texter") -> dict[str, Any]:
    return {"key": key, "trigger": {"type": "manual"}, "start": "text",
            "nodes": {"text": {"type": "SEND_MESSAGE", "channel": "sms", "body": "Hi there",
                               "next": "done"},
                      "done": {"type": "END"}}}


@dataclass
class Seeded:
    client: TestClient
    other_client: TestClient
    runtime: Runtime
    ids: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)  # attempt name -> run id
    other_attempt: str = ""

    def names(self, items: list[dict[str, Any]]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id.get(i["id"], f"<unknown {i['id']}>") for i in items]


def _run(seeded: Seeded, client: TestClient, key: str, contact: dict[str, str],
         ago: timedelta) -> tuple[str, str]:
    """Start and finish a run at NOW - ago; returns (run id, its attempt id)."""
    freeze(seeded.runtime, NOW - ago)
    response = client.post(f"/api/v1/workflows/{key}/runs", json={"contact": contact})
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    drain(seeded.runtime)
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "COMPLETED", run
    [attempt] = [s["delivery_attempt_id"] for s in run["steps"] if s["delivery_attempt_id"]]
    return run_id, attempt


def _seed(seeded: Seeded, workspace: WorkspaceHandle) -> None:
    client, runtime = seeded.client, seeded.runtime
    freeze(runtime, NOW - timedelta(days=60))
    for definition in (straight(), texter()):
        create(client, definition)
        create(seeded.other_client, definition)
    client.post("/api/v1/contacts", json={"email": CAROL})
    for name, key, contact, ago in (
        ("d1", "onboarding", {"email": ADA}, timedelta(days=40)),
        ("d2", "onboarding", {"email": BOB}, timedelta(days=10)),
        ("d3", "texter", {"phone": "+1 (415) 555-0123"}, timedelta(days=3)),
        ("d4", "onboarding", {"email": ADA}, timedelta(hours=5)),
    ):
        seeded.runs[name], seeded.ids[name] = _run(seeded, client, key, contact, ago)
    seeded.other_attempt = _run(seeded, seeded.other_client, "onboarding", {"email": ADA},
                                timedelta(hours=1))[1]
    freeze(runtime, NOW)

    with session_scope(runtime.sessions) as session:
        ws = workspace.id
        flows = {k: workflow_repo.get_by_key(session, ws, k) for k in ("onboarding", "texter")}
        people = {a: contact_service.find_by_address(session, workspace_id=ws, address=a)
                  for a in (ADA, BOB, CAROL, PHONE)}
        d2 = session.get(DeliveryAttempt, uuid.UUID(seeded.ids["d2"]))
        assert d2 is not None
        rows: list[dict[str, Any]] = []

        def row(name: str, ago: timedelta, status: str, who: str, flow: str | None,
                **extra: Any) -> uuid.UUID:
            attempt_id = new_id()
            seeded.ids[name] = str(attempt_id)
            person, workflow = people[who], flows[flow] if flow else None
            assert person is not None
            sms = who == PHONE
            rows.append({
                "id": attempt_id, "workspace_id": ws, "run_id": None, "step_seq": None,
                "workflow_id": workflow.id if workflow else None, "contact_id": person.id,
                "channel": "sms" if sms else "email", "provider": "outbox", "recipient": who,
                "subject": "" if sms else "Welcome", "body": f"Hello {who}", "status": status,
                "attempt_number": 1, "created_at": NOW - ago, **extra,
            })
            return attempt_id

        x4 = row("x4", timedelta(days=20), "FAILED", ADA, "onboarding", error="421 busy")
        x5 = row("x5", timedelta(days=20, minutes=-1), "SENT", ADA, "onboarding",
                 attempt_number=2, retry_of=x4, html="<p>Hello</p>")
        row("x7", timedelta(days=10, minutes=-1), "SENT", BOB, "onboarding", attempt_number=2,
            retry_of=d2.id, run_id=d2.run_id, step_seq=d2.step_seq)
        row("x1", timedelta(days=8), "DELIVERED", BOB, "onboarding")
        row("x2", timedelta(days=1), "BOUNCED", CAROL, "onboarding", error="550 no such user")
        row("x3", timedelta(minutes=30), "SUPPRESSED", PHONE, "texter",
            suppressed_by="unsubscribed")
        row("x6", timedelta(minutes=10), "QUEUED", ADA, None, resend_of=x5, actor="test",
            reason="customer asked")
        session.execute(insert(DeliveryAttempt), rows)
        session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id == d2.id)
                        .values(status="FAILED", error="451 try again later"))


@pytest.fixture(scope="module")
def seeded(
    _database_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    directory = tmp_path_factory.mktemp("deliveries")
    settings = Settings(database_url=fresh_database(_database_template, directory),
                        secret_key=TEST_SECRET_KEY,  # type: ignore[arg-type]
                        secret_key_file=str(directory / "secret.key"))
    engine = make_engine(settings.database_url)
    runtime = Runtime(sessions=make_sessionmaker(engine), cipher=SecretCipher(TEST_SECRET_KEY))
    workspace, other = make_workspace(runtime, "acme"), make_workspace(runtime, "globex")
    app = create_app(settings, runtime=runtime)
    try:
        with TestClient(app, headers=workspace.headers) as client, \
                TestClient(app, headers=other.headers) as other_client:
            world = Seeded(client, other_client, runtime)
            _seed(world, workspace)
            yield world
    finally:
        engine.dispose()


def _list(seeded: Seeded, params: dict[str, Any]) -> dict[str, Any]:
    response = seeded.client.get("/api/v1/deliveries", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _iso(delta: timedelta) -> str:
    return (NOW - delta).isoformat()


EMAIL_ADA = counts(QUEUED=1, SENT=3, FAILED=1)
ONBOARDING = counts(SENT=4, DELIVERED=1, BOUNCED=1, FAILED=2)
SMS = counts(SENT=1, SUPPRESSED=1)
# (params, attempts expected newest first, counts)
CASES: list[tuple[dict[str, Any], list[str], dict[str, int]]] = [
    ({}, NEWEST_FIRST, ALL_COUNTS),
    ({"status": "FAILED"}, ["d2", "x4"], ALL_COUNTS),
    ({"status": "QUEUED"}, ["x6"], ALL_COUNTS),
    ({"status": "SUPPRESSED"}, ["x3"], ALL_COUNTS),
    ({"status": "delivered, Bounced"}, ["x2", "x1"], ALL_COUNTS),
    ({"status": "sent,failed"}, ["d4", "d3", "x7", "d2", "x5", "x4", "d1"], ALL_COUNTS),
    ({"channel": "sms"}, ["x3", "d3"], SMS),
    ({"channel": "email"}, ["x6", "d4", "x2", "x1", "x7", "d2", "x5", "x4", "d1"],
     counts(QUEUED=1, SENT=4, DELIVERED=1, BOUNCED=1, FAILED=2)),
    ({"workflow": "texter"}, ["x3", "d3"], SMS),
    ({"workflow": "onboarding"}, ["d4", "x2", "x1", "x7", "d2", "x5", "x4", "d1"], ONBOARDING),
    ({"workflow": "no-such-flow"}, [], ZERO),
    ({"contact": "  ADA@Example.COM "}, ["x6", "d4", "x5", "x4", "d1"], EMAIL_ADA),
    ({"contact": "+1 (415) 555-0123"}, ["x3", "d3"], SMS),
    ({"contact": PHONE}, ["x3", "d3"], SMS),
    ({"contact": "nobody@example.com"}, [], ZERO),
    ({"range": "24h"}, ["x6", "x3", "d4", "x2"],
     counts(QUEUED=1, SUPPRESSED=1, SENT=1, BOUNCED=1)),
    ({"range": "7d"}, ["x6", "x3", "d4", "x2", "d3"],
     counts(QUEUED=1, SUPPRESSED=1, SENT=2, BOUNCED=1)),
    ({"range": "30d"}, NEWEST_FIRST[:-1], {**ALL_COUNTS, "ALL": 10, "SENT": 4}),
    ({"from": _iso(timedelta(days=10)), "to": _iso(timedelta(days=1))},
     ["d3", "x1", "x7", "d2"], counts(DELIVERED=1, SENT=2, FAILED=1)),
    ({"status": "SENT", "channel": "email", "contact": ADA}, ["d4", "x5", "d1"], EMAIL_ADA),
    ({"workflow": "onboarding", "range": "30d", "status": "FAILED"}, ["d2", "x4"],
     counts(SENT=3, DELIVERED=1, BOUNCED=1, FAILED=2)),
    ({"channel": "sms", "contact": ADA}, [], ZERO),
]


class TestListDeliveries:
    @pytest.mark.parametrize(("params", "expected", "expected_counts"), CASES,
                             ids=[str(c[0]) for c in CASES])
    def test_filter(self, seeded: Seeded, params: dict[str, Any], expected: list[str],
                    expected_counts: dict[str, int]) -> None:
        body = _list(seeded, params)

        assert seeded.names(body["items"]) == expected
        assert body["counts"] == expected_counts
        assert body["next_cursor"] is None

    def test_another_workspaces_attempt_never_shows(self, seeded: Seeded) -> None:
        ids = [i["id"] for i in _list(seeded, {})["items"]]

        assert seeded.other_attempt not in ids
        theirs = seeded.other_client.get("/api/v1/deliveries").json()
        assert [i["id"] for i in theirs["items"]] == [seeded.other_attempt]

    def test_item_of_a_run(self, seeded: Seeded) -> None:
        [item] = [i for i in _list(seeded, {})["items"] if i["id"] == seeded.ids["d4"]]
        run = seeded.client.get(f"/api/v1/runs/{seeded.runs['d4']}").json()
        [step] = [s for s in run["steps"] if s["node_id"] == "welcome"]

        assert item == {
            "id": seeded.ids["d4"], "status": "SENT", "channel": "email", "provider": "outbox",
            "recipient": ADA, "subject": "Welcome", "body": f"Hello {ADA}",
            "attempt_number": 1, "provider_message_id": f"outbox-{seeded.ids['d4']}",
            "provider_response": item["provider_response"], "error": None,
            "run_id": seeded.runs["d4"], "step_seq": step["seq"], "resend_of": None,
            "retry_of": None, "suppressed_by": None, "workflow": "onboarding",
            "contact": run["contact"], "created_at": item["created_at"],
            "sent_at": item["sent_at"],
        }
        assert item["provider_response"]["stored"] is True
        assert item["created_at"].startswith((NOW - timedelta(hours=5)).strftime("%Y-%m-%dT%H"))

    def test_item_of_a_resend_has_no_run_or_workflow(self, seeded: Seeded) -> None:
        [item] = [i for i in _list(seeded, {"status": "QUEUED"})["items"]]

        assert (item["run_id"], item["step_seq"], item["workflow"]) == (None, None, None)
        assert item["resend_of"] == seeded.ids["x5"]
        assert item["contact"]["email"] == ADA

    def test_suppressed_item_names_the_rule(self, seeded: Seeded) -> None:
        [item] = _list(seeded, {"status": "SUPPRESSED"})["items"]

        assert item["suppressed_by"] == "unsubscribed"
        assert item["contact"]["phone"] == PHONE

    @pytest.mark.parametrize("params", [
        {"status": "BOGUS"}, {"status": "SENT,RUNNING"}, {"channel": "fax"},
        {"range": "1y"}, {"range": "7d", "from": _iso(timedelta(days=1))},
        {"from": _iso(timedelta(days=1)), "to": _iso(timedelta(days=2))},
        {"limit": 0}, {"limit": 201}, {"cursor": "not-a-cursor"},
    ], ids=str)
    def test_invalid_input_is_422(self, seeded: Seeded, params: dict[str, Any]) -> None:
        response = seeded.client.get("/api/v1/deliveries", params=params)

        assert response.status_code == 422, response.text


class TestListDeliveriesPaging:
    def test_pages_cover_every_attempt_once_in_order(self, seeded: Seeded) -> None:
        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            body = _list(seeded, params)
            assert body["counts"] == ALL_COUNTS
            pages.append(seeded.names(body["items"]))
            cursor = body["next_cursor"]
            if cursor is None:
                break

        assert pages == [NEWEST_FIRST[:4], NEWEST_FIRST[4:8], NEWEST_FIRST[8:]]

    def test_cursor_keeps_the_other_filters(self, seeded: Seeded) -> None:
        first = _list(seeded, {"workflow": "onboarding", "limit": 3})
        second = _list(seeded, {"workflow": "onboarding", "limit": 3,
                                "cursor": first["next_cursor"]})

        assert seeded.names(first["items"]) == ["d4", "x2", "x1"]
        assert seeded.names(second["items"]) == ["x7", "d2", "x5"]
        assert second["next_cursor"] is not None


def _detail(seeded: Seeded, name: str) -> dict[str, Any]:
    response = seeded.client.get(f"/api/v1/deliveries/{seeded.ids[name]}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _chain(seeded: Seeded, body: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    by_id = {v: k for k, v in seeded.ids.items()}
    return [(by_id[c["id"]], c["relation"], c["attempt_number"], c["status"])
            for c in body["chain"]]


class TestGetDelivery:
    def test_attempt_of_a_run_links_its_run_and_step(self, seeded: Seeded) -> None:
        body = _detail(seeded, "d4")

        assert body["run"] == {"id": seeded.runs["d4"], "status": "COMPLETED",
                               "workflow": "onboarding"}
        assert body["step"]["node_id"] == "welcome"
        assert body["step"]["status"] == "COMPLETED"
        assert body["step"]["seq"] == body["step_seq"]
        assert _chain(seeded, body) == [("d4", "self", 1, "SENT")]

    def test_detail_carries_the_list_item_and_html(self, seeded: Seeded) -> None:
        body = _detail(seeded, "x5")
        [item] = [i for i in _list(seeded, {})["items"] if i["id"] == seeded.ids["x5"]]

        assert {k: v for k, v in body.items() if k in item} == item
        assert body["html"] == "<p>Hello</p>"
        assert (body["run"], body["step"]) == (None, None)

    @pytest.mark.parametrize(("name", "expected"), [
        ("x4", [("x4", "self", 1, "FAILED"), ("x5", "retry", 2, "SENT"),
                ("x6", "resend", 1, "QUEUED")]),
        ("x5", [("x4", "original", 1, "FAILED"), ("x5", "self", 2, "SENT"),
                ("x6", "resend", 1, "QUEUED")]),
        ("x6", [("x4", "original", 1, "FAILED"), ("x5", "retry", 2, "SENT"),
                ("x6", "self", 1, "QUEUED")]),
        ("x1", [("x1", "self", 1, "DELIVERED")]),
    ])
    def test_chain_both_ways_oldest_first(self, seeded: Seeded, name: str,
                                          expected: list[tuple[str, str, int, str]]) -> None:
        assert _chain(seeded, _detail(seeded, name)) == expected

    def test_chain_entries_carry_error_and_time(self, seeded: Seeded) -> None:
        [first, *_] = _detail(seeded, "x6")["chain"]

        assert first["error"] == "421 busy"
        assert first["created_at"].startswith((NOW - timedelta(days=20)).strftime("%Y-%m-%d"))
        assert first["retry_of"] is None

    def test_retry_of_a_run_attempt_links_the_same_run_and_step(self, seeded: Seeded) -> None:
        retry, first = _detail(seeded, "x7"), _detail(seeded, "d2")

        assert retry["run"] == first["run"]
        assert retry["step"] == first["step"]
        assert _chain(seeded, retry) == [("d2", "original", 1, "FAILED"),
                                         ("x7", "self", 2, "SENT")]
        assert first["error"] == "451 try again later"

    @pytest.mark.parametrize("delivery_id", ["01a20f1e-0000-7000-8000-000000000000", "x",
                                             "%_%"])
    def test_unknown_or_malformed_id_is_404(self, seeded: Seeded, delivery_id: str) -> None:
        response = seeded.client.get(f"/api/v1/deliveries/{delivery_id}")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NotFound"

    def test_another_workspaces_attempt_is_404(self, seeded: Seeded) -> None:
        response = seeded.client.get(f"/api/v1/deliveries/{seeded.other_attempt}")

        assert response.status_code == 404
        assert seeded.other_client.get(
            f"/api/v1/deliveries/{seeded.other_attempt}").status_code == 200


class TestRunDetailAttempts:
    def test_send_step_lists_every_attempt_of_it(self, seeded: Seeded) -> None:
        run = seeded.client.get(f"/api/v1/runs/{seeded.runs['d2']}").json()
        [send] = [s for s in run["steps"] if s["type"] == "SEND_MESSAGE"]

        assert send["delivery_attempt_id"] == seeded.ids["d2"]
        assert send["attempts"] == [
            {"id": seeded.ids["d2"], "status": "FAILED", "attempt_number": 1},
            {"id": seeded.ids["x7"], "status": "SENT", "attempt_number": 2},
        ]
        assert all(s["attempts"] == [] for s in run["steps"] if s is not send)

    def test_each_attempt_links_back_to_the_run_and_step(self, seeded: Seeded) -> None:
        run = seeded.client.get(f"/api/v1/runs/{seeded.runs['d2']}").json()
        [send] = [s for s in run["steps"] if s["type"] == "SEND_MESSAGE"]

        for attempt in send["attempts"]:
            body = seeded.client.get(f"/api/v1/deliveries/{attempt['id']}").json()
            assert (body["run_id"], body["step_seq"]) == (run["id"], send["seq"])
            assert body["run"]["id"] == run["id"]

    def test_sms_step_links_its_attempt(self, seeded: Seeded) -> None:
        run = seeded.client.get(f"/api/v1/runs/{seeded.runs['d3']}").json()
        [send] = [s for s in run["steps"] if s["type"] == "SEND_MESSAGE"]

        assert send["attempts"] == [{"id": seeded.ids["d3"], "status": "SENT",
                                     "attempt_number": 1}]
        assert _detail(seeded, "d3")["recipient"] == PHONE
