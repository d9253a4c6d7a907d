"""Contacts pages: search, paging, and one contact's attributes and timeline."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from relayflow.services import contact as contact_service
from relayflow.services import erase as erase_service
from relayflow.services import trigger_events
from relayflow.services import unsubscribe as unsubscribe_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import WorkflowRun
from tests.support.pages import csrf_token
from tests.support.seed import XSS, Seeded, seed

_ROW = re.compile(r'<tr data-contact="([0-9a-f-]+)"')
_ENTRY = re.compile(r'<tr data-kind="(run|delivery)" data-id="([0-9a-f-]+)"')
_TRIGGER = re.compile(r'<tr data-kind="trigger" data-code="(\w+)" data-cause="(\w*)"')
_EVIDENCE = re.compile(r'<li data-code="(\w+)">')
_PAGER = re.compile(r'<a class="btn" href="([^"]+)" rel="(prev|next)">')


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def rows(text: str) -> list[uuid.UUID]:
    return [uuid.UUID(found) for found in _ROW.findall(text)]


def pager(text: str) -> dict[str, str]:
    return {rel: html.unescape(href) for href, rel in _PAGER.findall(text)}


def entry(text: str, kind: str, key: str, value: object) -> str:
    """The cells of the timeline's entry of that kind whose data-KEY is value."""
    found = re.search(rf'<tr data-kind="{kind}" data-{key}="{value}">(.*?)</tr>', text, re.S)
    assert found, f"no {kind} entry with {key} {value}"
    return found.group(1)


def channel(text: str, name: str) -> str:
    """The suppression line of one channel on a contact's page."""
    found = re.search(rf'data-channel="{name}">(.*?)</dd>', text, re.S)
    assert found, f"no {name} line"
    return found.group(1)


class TestList:
    def test_lists_every_contact_newest_first_with_suppression(self, page_client, seeded):
        response = page_client.get("/contacts")
        assert response.status_code == 200
        assert response.template.name == "contacts/list.html"
        c = seeded.contacts
        assert rows(response.text) == [c["linus"], c["grace"], c["ada"]]
        assert "Email suppressed · unsubscribed" in response.text  # linus
        assert "Email suppressed · bounced" in response.text  # grace, after the hard bounce
        assert f'href="/contacts/{c["ada"]}"' in response.text

    @pytest.mark.parametrize(("q", "who"), [
        ("ada@example.com", ["ada"]),
        ("GRACE@", ["grace"]),
        ("example.com", ["linus", "grace", "ada"]),
        ("+14155550101", ["ada"]),
        ("+1 (415) 555-0101", ["ada"]),
        ("2071838750", ["grace"]),
        ("+44 20 7183 8750", ["grace"]),
        ("nobody", []),
    ])
    def test_search_finds_by_email_and_phone(self, page_client, seeded, q, who):
        response = page_client.get("/contacts", params={"q": q})
        assert response.status_code == 200
        assert rows(response.text) == [seeded.contacts[name] for name in who]
        if not who:
            assert "No contact matches" in response.text

    def test_the_list_renders_attributes_as_text(self, page_client, seeded):
        text = page_client.get("/contacts").text
        assert "<script>window.__xss" not in text
        assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in text

    def test_paging_older_and_newer(self, page_client, seeded):
        c = seeded.contacts
        first = page_client.get("/contacts?limit=2")
        assert rows(first.text) == [c["linus"], c["grace"]]
        assert set(pager(first.text)) == {"next"}
        second = page_client.get(pager(first.text)["next"])
        assert rows(second.text) == [c["ada"]]
        assert set(pager(second.text)) == {"prev"}
        back = page_client.get(pager(second.text)["prev"])
        assert rows(back.text) == [c["linus"], c["grace"]]
        assert set(pager(back.text)) == {"next"}

    @pytest.mark.parametrize("query", ["limit=0", "limit=x", "cursor=%21%21"])
    def test_a_malformed_query_is_shown_inline_with_422(self, page_client, seeded, query):
        response = page_client.get(f"/contacts?{query}")
        assert response.status_code == 422
        assert 'role="alert"' in response.text
        assert rows(response.text) == []

    def test_an_empty_workspace_says_so(self, page_client):
        assert "No contacts yet" in page_client.get("/contacts").text

    def test_outsiders_see_none_of_them(self, outsider_page_client, seeded):
        assert rows(outsider_page_client.get("/contacts").text) == []


class TestDetail:
    def test_attributes_render_as_inert_text(self, page_client, seeded):
        response = page_client.get(f"/contacts/{seeded.contacts['grace']}")
        assert response.status_code == 200
        assert response.template.name == "contacts/detail.html"
        text = response.text
        assert "<script>window.__xss" not in text
        assert "onerror=\"window.__xss" not in text
        assert html.escape(XSS, quote=True).replace("&#x27;", "&#39;").replace(
            "&quot;", "&#34;") in text
        assert '<span class="attr-value" data-attribute="plan">free</span>' in text

    def test_identifiers_and_suppression_per_channel(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['grace']}").text
        assert "<dd>+442071838750</dd>" in text
        assert "Suppressed" in channel(text, "email")
        assert "bounced" in channel(text, "email")
        assert "Deliverable" in channel(text, "sms")
        linus = page_client.get(f"/contacts/{seeded.contacts['linus']}").text
        assert "unsubscribed" in channel(linus, "email")
        assert "No phone" in channel(linus, "sms")

    def test_the_timeline_interleaves_runs_and_deliveries_newest_first(self, page_client,
                                                                      seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['grace']}").text
        runs, attempts = seeded.runs, seeded.attempts
        assert _ENTRY.findall(text) == [
            ("run", str(runs["nurture_grace"])),
            ("delivery", str(attempts["welcome_grace"])),
            ("run", str(runs["welcome_grace"])),
            ("run", str(runs["payment_grace"])),
        ]
        assert f'href="/runs/{runs["nurture_grace"]}"' in text
        assert f'href="/delivery-ops/{attempts["welcome_grace"]}"' in text
        assert 'data-status="BOUNCED"' in text
        assert 'data-status="CANCELED"' in text

    def test_refused_and_duplicate_triggers_are_on_the_timeline(self, page_client, runtime,
                                                                  workspace, seeded):
        grace, welcome = seeded.contacts["grace"], seeded.runs["welcome_grace"]
        with session_scope(runtime.sessions) as session:
            run = session.get(WorkflowRun, welcome)
            assert run is not None
            for minutes, code, cause, run_id in ((1, "trigger_rejected", "signature", None),
                                                 (2, "duplicate_trigger", None, welcome)):
                trigger_events.record(
                    session, workspace_id=workspace.id, workflow_id=run.workflow_id,
                    contact_id=grace, source="webhook", code=code, cause=cause,
                    run_id=run_id, now=datetime.now(UTC) + timedelta(minutes=minutes))
        text = page_client.get(f"/contacts/{grace}").text
        assert _TRIGGER.findall(text) == [("duplicate_trigger", ""),
                                          ("trigger_rejected", "signature")]
        assert text.index('data-kind="trigger"') < text.index('data-kind="run"')
        assert "refused: its signature did not verify" in text
        assert "a duplicate: answered with the run its key opened" in text
        assert text.count(f'href="/runs/{welcome}"') == 2  # the run, and the duplicate's link
        assert ">Refused<" in text

    def test_ada_timeline_holds_all_her_runs_and_messages(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['ada']}").text
        kinds = [kind for kind, _ in _ENTRY.findall(text)]
        assert kinds.count("run") == 4
        assert kinds.count("delivery") == 3
        assert _ENTRY.findall(text)[0] == ("run", str(seeded.runs["nurture_ada"]))
        assert 'data-status="DELIVERED"' in text

    def test_links_to_all_runs_and_all_deliveries(self, page_client, seeded):
        contact_id = seeded.contacts["ada"]
        text = page_client.get(f"/contacts/{contact_id}").text
        assert f'href="/runs?contact={contact_id}"' in text
        assert f'href="/delivery-ops?contact={contact_id}&amp;range=all"' in text

    def test_a_contact_with_no_history_shows_the_empty_timeline(self, page_client, runtime,
                                                                workspace, members):
        with session_scope(runtime.sessions) as session:
            contact = contact_service.resolve(session, workspace_id=workspace.id,
                                              spec={"email": "new@example.com"},
                                              now=datetime.now(UTC))
            contact_id = contact.id
        text = page_client.get(f"/contacts/{contact_id}").text
        assert "Nothing has happened for this contact yet" in text
        assert "No attributes." in text

    @pytest.mark.parametrize("contact_id", ["nope", str(uuid.uuid4())])
    def test_unknown_or_malformed_ids_are_404(self, page_client, seeded, contact_id):
        assert page_client.get(f"/contacts/{contact_id}").status_code == 404

    def test_another_workspaces_contact_is_404(self, outsider_page_client, seeded):
        response = outsider_page_client.get(f"/contacts/{seeded.contacts['grace']}")
        assert response.status_code == 404
        assert "grace@example.com" not in response.text

    def test_not_signed_in_redirects_to_login(self, anonymous_client, seeded):
        response = anonymous_client.get(f"/contacts/{seeded.contacts['ada']}",
                                        follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")


class TestWhyNot:
    """The contact page's "Why not?" panel: a workflow's verdict and its evidence, as the
    explain API gives them, and the ways to it from Delivery ops and the run list."""

    @pytest.mark.parametrize(("who", "verdict", "code"), [
        ("ada", "delivered", "delivered"), ("grace", "not_sent", "bounced"),
        ("linus", "not_sent", "suppressed_unsubscribed")])
    def test_the_verdict_and_the_evidence_are_the_apis(self, page_client, client, seeded, who,
                                                       verdict, code):
        contact_id = seeded.contacts[who]
        response = page_client.get(f"/contacts/{contact_id}?why=welcome&range=7d")
        assert response.status_code == 200
        text = response.text
        assert f'data-verdict="{verdict}"' in text
        api = client.get(f"/api/v1/contacts/{contact_id}/explain",
                         params={"workflow": "welcome", "range": "7d"}).json()
        assert api["verdict"] == verdict
        assert _EVIDENCE.findall(text) == [r["code"] for r in api["reasons"]]
        assert code in _EVIDENCE.findall(text)
        assert '<option value="welcome" selected>' in text

    def test_without_a_workflow_the_panel_asks_for_one(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['ada']}").text
        assert 'id="why"' in text
        assert "data-verdict" not in text

    def test_an_unknown_workflow_or_range_is_shown_inline_with_422(self, page_client, seeded):
        for query in ("why=nope", "why=welcome&range=1y"):
            response = page_client.get(f"/contacts/{seeded.contacts['ada']}?{query}")
            assert response.status_code == 422, query
            assert 'role="alert"' in response.text
            assert "Timeline" in response.text  # the rest of the page is still there

    def test_reached_from_the_run_list_filtered_by_a_contact(self, page_client, seeded):
        text = page_client.get("/runs?contact=grace@example.com&workflow=welcome").text
        grace = seeded.contacts["grace"]
        assert f'href="/contacts/{grace}?why=welcome#why" data-why' in text
        assert "data-why" not in page_client.get("/runs").text

    def test_reached_from_a_delivery_attempt(self, page_client, seeded):
        text = page_client.get(f"/delivery-ops/{seeded.attempts['welcome_grace']}").text
        grace = seeded.contacts["grace"]
        assert f'href="/contacts/{grace}?why=welcome#why" data-why' in text


class TestSuppression:
    """A suppression says since when and from what; an admin lifts it from the page."""

    def test_a_bounce_links_to_the_message_that_bounced(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['grace']}").text
        email = channel(text, "email")
        assert "bounced" in email
        assert f'href="/delivery-ops/{seeded.attempts["welcome_grace"]}">the message that ' \
               "bounced</a>" in email

    def test_a_bounce_callback_is_an_entry_of_its_own(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['grace']}").text
        attempt = seeded.attempts["welcome_grace"]
        row = entry(text, "callback", "id", attempt)
        assert "the provider reported a hard bounce" in row
        assert f'href="/delivery-ops/{attempt}"' in row
        assert f'<tr data-kind="delivery" data-id="{attempt}">' in text  # the message too

    def test_an_unsubscribe_says_when_and_shows_on_the_timeline(self, page_client, runtime,
                                                                workspace, seeded):
        ada = seeded.contacts["ada"]
        token = unsubscribe_service.token(runtime, workspace_id=workspace.id, contact_id=ada,
                                          channel="email")
        with session_scope(runtime.sessions) as session:
            unsubscribe_service.unsubscribe(session, runtime, text=token,
                                            now=datetime.now(UTC))
        text = page_client.get(f"/contacts/{ada}").text
        assert "from the unsubscribe link" in channel(text, "email")
        assert 'data-kind="suppression" data-action="contact.unsubscribe"' in text
        assert "unsubscribed from email (the unsubscribe link)" in text

    def test_an_admin_lifts_it_and_the_timeline_says_who_and_why(self, page_client, seeded):
        linus = seeded.contacts["linus"]
        assert 'data-lift="email"' in page_client.get(f"/contacts/{linus}").text
        response = page_client.post(f"/contacts/{linus}/suppression/lift", data={
            "csrf_token": csrf_token(page_client), "channel": "email",
            "reason": "fixed his address"}, follow_redirects=True)
        assert response.status_code == 200
        assert "Suppression lifted" in response.text
        assert "Deliverable" in channel(response.text, "email")
        assert 'data-action="contact.suppression_lift"' in response.text
        assert "(unsubscribed) lifted by " in response.text
        assert "fixed his address" in response.text

    def test_no_one_but_an_admin_may(self, operator_page_client, viewer_page_client, seeded):
        linus = seeded.contacts["linus"]
        for client in (operator_page_client, viewer_page_client):
            assert 'data-lift="email"' not in client.get(f"/contacts/{linus}").text
            response = client.post(f"/contacts/{linus}/suppression/lift", data={
                "csrf_token": csrf_token(client), "channel": "email", "reason": "x"})
            assert response.status_code == 403
            assert "unsubscribed" in channel(client.get(f"/contacts/{linus}").text, "email")


class TestAttributesOnTheTimeline:
    def test_attributes_a_run_set_show_with_the_run(self, page_client, seeded):
        text = page_client.get(f"/contacts/{seeded.contacts['ada']}").text
        run = seeded.runs["nurture_ada"]
        row = entry(text, "attributes", "run", run)
        assert "set stage" in row
        assert f'href="/runs/{run}"' in row

    def test_attributes_changed_through_the_api_show_who_and_which(self, page_client, client,
                                                                   seeded):
        ada = seeded.contacts["ada"]
        body = {"email": "ada@example.com", "attributes": {"plan": "team", "first_name": None,
                                                           "city": "London"}}
        assert client.post("/api/v1/contacts", json=body).status_code == 200
        assert client.post("/api/v1/contacts", json=body).status_code == 200  # no change
        text = page_client.get(f"/contacts/{ada}").text
        found = re.findall(r'<tr data-kind="attributes" data-by="api">(.*?)</tr>', text, re.S)
        assert len(found) == 1, found
        assert "set city, plan; removed first_name (by key:" in found[0]
        assert "London" not in found[0]  # names, not values

    def test_an_erased_contact_is_a_tombstone(self, page_client, runtime, workspace, seeded):
        grace = seeded.contacts["grace"]
        with session_scope(runtime.sessions) as session:
            erase_service.erase(session, workspace_id=workspace.id, contact_id=str(grace),
                                reason="asked", actor="test", now=datetime.now(UTC))
        text = page_client.get(f"/contacts/{grace}").text
        assert "data-erased" in text
        assert "grace@example.com" not in text
        assert 'data-kind="run"' in text  # what happened stays
