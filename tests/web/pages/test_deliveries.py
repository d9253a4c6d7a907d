"""Delivery ops pages: the filtered attempt list, one attempt in full, and the resend form."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from relayflow.services import resend as resend_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt
from relayflow.web.pages.deliveries import FRAME_CSP
from tests.support.flows import attempts_of, install, start
from tests.support.pages import csrf_token
from tests.support.seed import Seeded, seed
from tests.support.worker import drain
from tests.web.conftest import OPERATOR

_ROW = re.compile(r'<tr data-attempt="([0-9a-f-]+)"')
_CHIP = re.compile(r'data-chip="([A-Z]+)">\s*\w+ <span class="chip-count" data-count>([\d,]+)<')
_PAGER = re.compile(r'<a class="btn" href="([^"]+)" rel="(prev|next)">')


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def rows(text: str) -> list[uuid.UUID]:
    return [uuid.UUID(found) for found in _ROW.findall(text)]


def chips(text: str) -> dict[str, int]:
    return {value: int(count.replace(",", "")) for value, count in _CHIP.findall(text)}


def pager(text: str) -> dict[str, str]:
    return {rel: html.unescape(href) for href, rel in _PAGER.findall(text)}


def attempts(s: Seeded, *labels: str) -> list[uuid.UUID]:
    return [s.attempts[label] for label in labels]


def count_attempts(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryAttempt)) or 0)


def get_attempt(runtime: Runtime, attempt_id: uuid.UUID) -> DeliveryAttempt:
    with session_scope(runtime.sessions) as session:
        found = session.get(DeliveryAttempt, attempt_id)
        assert found is not None
        return found


class TestList:
    def test_chips_count_each_status_over_the_default_30_days(self, page_client, seeded):
        response = page_client.get("/delivery-ops")
        assert response.status_code == 200
        assert response.template.name == "deliveries/list.html"
        assert chips(response.text) == {"ALL": 4, "QUEUED": 0, "SENT": 1, "DELIVERED": 1,
                                        "BOUNCED": 1, "FAILED": 0, "SUPPRESSED": 1}
        assert rows(response.text) == attempts(seeded, "welcome_linus", "welcome_ada_1h",
                                               "welcome_ada_2h", "welcome_grace")
        assert 'aria-current="true" data-chip="ALL"' in response.text

    @pytest.mark.parametrize(("status", "labels"), [
        ("SENT", ["welcome_ada_2h"]),
        ("DELIVERED", ["welcome_ada_1h"]),
        ("BOUNCED", ["welcome_grace"]),
        ("SUPPRESSED", ["welcome_linus"]),
        ("FAILED", []),
    ])
    def test_a_status_chip_lists_only_its_rows(self, page_client, seeded, status, labels):
        response = page_client.get(f"/delivery-ops?status={status}")
        assert rows(response.text) == attempts(seeded, *labels)
        assert chips(response.text)["ALL"] == 4  # counts ignore the status filter
        assert f'aria-current="true" data-chip="{status}"' in response.text
        if not labels:
            assert "No delivery attempts match these filters" in response.text

    def test_any_time_includes_the_40_day_old_attempt(self, page_client, seeded):
        response = page_client.get("/delivery-ops?range=all&status=SENT")
        assert rows(response.text) == attempts(seeded, "welcome_ada_2h", "welcome_ada_old")
        assert chips(response.text)["ALL"] == 5
        assert 'href="/delivery-ops?status=BOUNCED&amp;range=all"' in response.text

    @pytest.mark.parametrize(("query", "labels"), [
        ("channel=email", ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h",
                           "welcome_grace"]),
        ("channel=sms", []),
        ("workflow=welcome", ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h",
                              "welcome_grace"]),
        ("workflow=nurture", []),
        ("contact=ADA%40example.com", ["welcome_ada_1h", "welcome_ada_2h"]),
        ("contact=%2B1+(415)+555-0101", ["welcome_ada_1h", "welcome_ada_2h"]),
        ("contact=%2B44+20+7183+8750", ["welcome_grace"]),
        ("contact=nobody%40example.com", []),
        ("range=24h", ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h"]),
        ("range=7d", ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h", "welcome_grace"]),
    ])
    def test_filters_give_the_known_rows(self, page_client, seeded, query, labels):
        response = page_client.get(f"/delivery-ops?{query}")
        assert response.status_code == 200
        assert rows(response.text) == attempts(seeded, *labels)
        assert chips(response.text)["ALL"] == len(labels)

    def test_contact_filter_by_id(self, page_client, seeded):
        response = page_client.get(f"/delivery-ops?contact={seeded.contacts['grace']}&range=all")
        assert rows(response.text) == attempts(seeded, "welcome_grace")

    def test_custom_range_takes_from_and_to(self, page_client, seeded):
        start = (seeded.now - timedelta(days=41)).strftime("%Y-%m-%dT%H:%M:%S")
        end = (seeded.now - timedelta(days=39)).strftime("%Y-%m-%dT%H:%M:%S")
        response = page_client.get(f"/delivery-ops?range=custom&from={start}&to={end}")
        assert rows(response.text) == attempts(seeded, "welcome_ada_old")
        # A preset range wins over leftover custom fields (the form still submits them).
        response = page_client.get(f"/delivery-ops?range=24h&from={start}&to={end}")
        assert len(rows(response.text)) == 3

    def test_rows_link_to_the_attempt_and_its_run(self, page_client, seeded):
        text = page_client.get("/delivery-ops").text
        attempt, run = seeded.attempts["welcome_ada_1h"], seeded.runs["welcome_ada_1h"]
        assert f'href="/delivery-ops/{attempt}"' in text
        assert f'href="/runs/{run}"' in text
        assert "Welcome, Ada" in text
        assert "ada@example.com" in text

    @pytest.mark.parametrize(("query", "message"), [
        ("limit=0", "limit must be between 1 and 200"),
        ("limit=500", "limit must be between 1 and 200"),
        ("limit=ten", "limit must be a whole number"),
        ("channel=fax", "channel must be one of email, sms"),
        ("status=LOST", "unknown delivery status LOST"),
        ("range=custom&from=yesterday", "from is not a date and time"),
        ("range=1y", "range must be one of"),
        ("cursor=%21%21not-a-cursor", "cursor is not valid"),
        ("contact=not+an+address", "is not a phone number"),
    ])
    def test_a_malformed_filter_is_shown_inline_with_422(self, page_client, seeded, query,
                                                          message):
        response = page_client.get(f"/delivery-ops?{query}")
        assert response.status_code == 422
        assert response.template.name == "deliveries/list.html"
        assert 'id="filter-error"' in response.text
        assert html.escape(message, quote=True) in response.text
        assert rows(response.text) == []

    def test_paging_older_and_newer_with_limit_2(self, page_client, seeded):
        first = page_client.get("/delivery-ops?range=all&limit=2")
        assert rows(first.text) == attempts(seeded, "welcome_linus", "welcome_ada_1h")
        assert set(pager(first.text)) == {"next"}  # no Newer on the first page
        second = page_client.get(pager(first.text)["next"])
        assert rows(second.text) == attempts(seeded, "welcome_ada_2h", "welcome_grace")
        assert "range=all" in pager(second.text)["next"]
        assert "limit=2" in pager(second.text)["next"]
        third = page_client.get(pager(second.text)["next"])
        assert rows(third.text) == attempts(seeded, "welcome_ada_old")
        assert set(pager(third.text)) == {"prev"}  # nothing older
        back = page_client.get(pager(third.text)["prev"])
        assert rows(back.text) == attempts(seeded, "welcome_ada_2h", "welcome_grace")
        top = page_client.get(pager(back.text)["prev"])
        assert rows(top.text) == attempts(seeded, "welcome_linus", "welcome_ada_1h")
        assert set(pager(top.text)) == {"next"}  # back at the newest: no Newer

    def test_an_empty_workspace_shows_the_empty_state(self, page_client):
        response = page_client.get("/delivery-ops")
        assert response.status_code == 200
        assert "No delivery attempts match these filters" in response.text
        assert chips(response.text)["ALL"] == 0

    def test_not_signed_in_redirects_to_login(self, anonymous_client):
        response = anonymous_client.get("/delivery-ops?status=SENT", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2Fdelivery-ops")

    def test_outsiders_see_none_of_the_workspace(self, outsider_page_client, seeded):
        response = outsider_page_client.get("/delivery-ops?range=all")
        assert rows(response.text) == []
        assert chips(response.text)["ALL"] == 0


class TestDetail:
    def test_shows_the_message_provider_and_the_way_back_to_its_run(self, page_client,
                                                                   seeded):
        attempt_id, run_id = seeded.attempts["welcome_ada_1h"], seeded.runs["welcome_ada_1h"]
        response = page_client.get(f"/delivery-ops/{attempt_id}")
        assert response.status_code == 200
        assert response.template.name == "deliveries/detail.html"
        text = response.text
        assert 'data-status="DELIVERED"' in text
        assert "ada@example.com" in text
        assert "Welcome, Ada" in text
        assert "Hello Ada, glad you are here." in text
        assert "<dd>outbox</dd>" in text
        assert f"outbox-{attempt_id}" in text  # the provider message id
        assert "kept in the outbox; not sent anywhere" in text  # the provider response
        assert "<strong>delivered</strong>" in text  # the provider callback
        assert re.search(rf'<a href="/runs/{run_id}" data-run-link>Run <span class="mono">'
                         rf'{run_id.hex[-8:]}</span> · step 1 \(send\)</a>', text)

    def test_a_suppressed_attempt_says_why(self, page_client, seeded):
        text = page_client.get(f"/delivery-ops/{seeded.attempts['welcome_linus']}").text
        assert 'data-status="SUPPRESSED"' in text
        assert "<dt>Suppressed by</dt><dd>unsubscribed</dd>" in text
        assert "not sent" in text

    def test_html_body_is_in_an_empty_sandbox_with_escaped_srcdoc(
        self, page_client, runtime, workspace, members
    ):
        install(runtime, workspace.id, {
            "key": "fancy", "name": "Fancy", "trigger": {"type": "manual"}, "start": "send",
            "nodes": {"send": {"type": "SEND_MESSAGE", "channel": "email", "subject": "Hi",
                               "body": "plain text",
                               "html": '<p class="x">Hi & "bye"</p><script>parent.__xss=1'
                                       '</script>', "next": "done"},
                      "done": {"type": "END"}}})
        run_id = start(runtime, workspace.id, "fancy", email="html@example.com")[0]
        drain(runtime)
        attempt = attempts_of(runtime, run_id)[0]
        text = page_client.get(f"/delivery-ops/{attempt.id}").text
        frame = re.search(r"<iframe [^>]*>", text)
        assert frame, "no iframe for the HTML body"
        tag = frame.group(0)
        assert ' sandbox="" ' in tag
        assert 'referrerpolicy="no-referrer"' in tag
        srcdoc = re.search(r'srcdoc="([^"]*)"', tag)
        assert srcdoc, "srcdoc must be one double-quoted attribute"
        assert "&lt;p class=&#34;x&#34;&gt;Hi &amp; &#34;bye&#34;&lt;/p&gt;" in srcdoc.group(1)
        assert "&lt;script&gt;parent.__xss=1&lt;/script&gt;" in srcdoc.group(1)
        assert "<script>parent.__xss" not in text
        # Unescaped once by the browser, the attribute is exactly the message's HTML behind
        # a policy that loads nothing from the network.
        assert html.unescape(srcdoc.group(1)) == FRAME_CSP + attempt.html

    def test_an_attempt_without_html_has_no_iframe(self, page_client, seeded):
        text = page_client.get(f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}").text
        assert "<iframe" not in text

    @pytest.mark.parametrize("attempt_id", ["nope", "123", str(uuid.uuid4())])
    def test_unknown_or_malformed_ids_are_404(self, page_client, seeded, attempt_id):
        response = page_client.get(f"/delivery-ops/{attempt_id}")
        assert response.status_code == 404
        assert response.template.name == "error.html"

    def test_another_workspaces_attempt_is_404(self, outsider_page_client, seeded):
        response = outsider_page_client.get(f"/delivery-ops/{seeded.attempts['welcome_grace']}")
        assert response.status_code == 404

    def test_viewers_get_no_resend_button(self, viewer_page_client, seeded):
        text = viewer_page_client.get(f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}").text
        assert "/resend" not in text
        assert 'data-dialog="resend-dialog"' not in text

    def test_the_resend_dialog_asks_for_a_reason_and_warns_on_suppression(
        self, operator_page_client, seeded
    ):
        plain = operator_page_client.get(f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}")
        assert 'name="reason" required' in plain.text
        assert 'name="override"' not in plain.text
        assert re.search(r'name="csrf_token" value="[^"]+"', plain.text)
        bounced = operator_page_client.get(f"/delivery-ops/{seeded.attempts['welcome_grace']}")
        assert "This contact's email is suppressed (bounced)" in bounced.text
        assert 'name="override"' in bounced.text


def post_resend(client: TestClient, attempt_id: uuid.UUID, **data: str):  # type: ignore[no-untyped-def]
    token = csrf_token(client, f"/delivery-ops/{attempt_id}")
    return client.post(f"/delivery-ops/{attempt_id}/resend",
                       data={"csrf_token": token, **data}, follow_redirects=False)


class TestResend:
    def test_an_operator_resend_queues_a_runless_attempt_and_opens_it(
        self, operator_page_client, runtime, seeded
    ):
        original = seeded.attempts["welcome_ada_2h"]
        response = post_resend(operator_page_client, original, reason="Customer asked again")
        assert response.status_code == 303
        location = response.headers["location"]
        match = re.fullmatch(r"/delivery-ops/([0-9a-f-]+)\?notice=resent", location)
        assert match, location
        copy = get_attempt(runtime, uuid.UUID(match.group(1)))
        assert (copy.run_id, copy.resend_of, copy.status) == (None, original, "QUEUED")
        assert (copy.reason, copy.actor) == ("Customer asked again", OPERATOR)
        page = operator_page_client.get(location)
        assert "Resend queued" in page.text
        assert 'data-status="QUEUED"' in page.text
        assert "Customer asked again" in page.text
        assert f'href="/delivery-ops/{original}"' in page.text  # the chain
        assert "Manual resend by <strong>olga@acme.test</strong>" in page.text
        listing = operator_page_client.get("/delivery-ops?status=QUEUED")
        assert rows(listing.text) == [copy.id]
        assert "manual resend" in listing.text
        resend_service.send_queued(runtime)  # the worker's pass
        sent = operator_page_client.get(f"/delivery-ops/{copy.id}")
        assert 'data-status="SENT"' in sent.text

    def test_a_queued_attempt_is_a_live_region_until_it_is_sent(
        self, operator_page_client, runtime, seeded
    ):
        response = post_resend(operator_page_client, seeded.attempts["welcome_ada_2h"],
                               reason="again")
        url = response.headers["location"].split("?")[0]
        live = {"X-Requested-With": "fetch"}
        queued = operator_page_client.get(url, headers=live)
        assert queued.template.name == "deliveries/_attempt.html"
        assert queued.text.lstrip().startswith(
            f'<div class="attempt-live" id="attempt-live" data-live-url="{url}"')
        assert "<html" not in queued.text
        resend_service.send_queued(runtime)
        sent = operator_page_client.get(url, headers=live)
        assert 'data-status="SENT"' in sent.text
        assert "data-live-url" not in sent.text  # polling stops

    def test_a_viewer_is_refused(self, viewer_page_client, runtime, seeded):
        before = count_attempts(runtime)
        response = post_resend(viewer_page_client, seeded.attempts["welcome_ada_2h"],
                               reason="try")
        assert response.status_code == 403
        assert count_attempts(runtime) == before

    def test_without_the_csrf_token_nothing_is_queued(self, operator_page_client, runtime,
                                                      seeded):
        before = count_attempts(runtime)
        response = operator_page_client.post(
            f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}/resend",
            data={"reason": "try"}, follow_redirects=False)
        assert response.status_code == 403
        assert count_attempts(runtime) == before

    def test_a_missing_reason_is_refused(self, operator_page_client, runtime, seeded):
        before = count_attempts(runtime)
        response = post_resend(operator_page_client, seeded.attempts["welcome_ada_2h"],
                               reason="   ")
        assert response.status_code == 422
        assert "Not resent: give a reason" in response.text
        assert count_attempts(runtime) == before

    def test_a_suppressed_contact_needs_the_override(self, operator_page_client, runtime,
                                                     seeded):
        bounced = seeded.attempts["welcome_grace"]
        before = count_attempts(runtime)
        refused = post_resend(operator_page_client, bounced, reason="She asked for it")
        assert refused.status_code == 409
        assert 'id="resend-error"' in refused.text
        assert "Override suppression" in refused.text
        assert "She asked for it" in refused.text  # the reason is kept in the form
        assert count_attempts(runtime) == before
        queued = post_resend(operator_page_client, bounced, reason="She asked for it",
                             override="1")
        assert queued.status_code == 303
        copy_id = uuid.UUID(queued.headers["location"].split("/")[2].split("?")[0])
        copy = get_attempt(runtime, copy_id)
        assert copy.suppression_override is True
        assert copy.resend_of == bounced
        assert count_attempts(runtime) == before + 1

    def test_an_outsider_gets_404(self, outsider_page_client, runtime, seeded):
        before = count_attempts(runtime)
        token = csrf_token(outsider_page_client, "/delivery-ops")
        response = outsider_page_client.post(
            f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}/resend",
            data={"csrf_token": token, "reason": "x"}, follow_redirects=False)
        assert response.status_code == 404
        assert count_attempts(runtime) == before

    def test_not_signed_in_redirects_to_login(self, anonymous_client, seeded):
        response = anonymous_client.post(
            f"/delivery-ops/{seeded.attempts['welcome_ada_2h']}/resend",
            data={"reason": "x"}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
