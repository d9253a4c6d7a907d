"""Bulk operation pages: the dry run before the confirm button, the made operation and its
progress, stopping it, and who may do what."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from relayflow.services import bulk
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import BulkOperation, WorkflowRun
from tests.support.flows import run_of
from tests.support.pages import csrf_token
from tests.support.seed import Seeded, seed


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def _operations(runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(BulkOperation)))


class TestNew:
    def test_the_dry_run_is_shown_before_the_confirm_button(self, operator_page_client,
                                                             runtime, seeded):
        fingerprint = run_of(runtime, seeded.runs["payment_linus"]).fingerprint
        response = operator_page_client.get(
            f"/bulk-operations/new?action=retry&status=FAILED&fingerprint={fingerprint}")
        assert response.status_code == 200
        text = response.text
        assert 'data-count="2"' in text
        assert 'data-acting="2"' in text
        assert set(re.findall(r'data-sample="([0-9a-f-]+)"', text)) == {
            str(seeded.runs["payment_linus"]), str(seeded.runs["payment_grace"])}
        assert 'data-messages="0"' in text
        assert text.index("Dry run") < text.index("Retry 2 runs")
        assert _operations(runtime) == 0

    def test_confirming_makes_the_operation_and_shows_its_progress(
            self, operator_page_client, runtime, seeded):
        response = operator_page_client.post("/bulk-operations", data={
            "csrf_token": csrf_token(operator_page_client), "action": "retry", "status": "FAILED",
            "version": "current", "reason": "card processor fixed"}, follow_redirects=False)
        assert response.status_code == 303
        location = response.headers["location"]
        operation_id = location.rsplit("/", 1)[1]
        detail = operator_page_client.get(location)
        assert detail.status_code == 200
        assert 'data-status="RUNNING"' in detail.text
        assert "card processor fixed" in html.unescape(detail.text)
        later = runtime.clock() + timedelta(minutes=1)
        runtime.clock = lambda: later
        while bulk.advance(runtime, worker="w"):
            pass
        progress = operator_page_client.get(f"/bulk-operations/{operation_id}/progress").json()
        assert (progress["status"], progress["done"], progress["acted"], progress["percent"]) \
            == ("COMPLETED", 2, 2, 100)
        finished = operator_page_client.get(location).text
        assert len(re.findall(r'data-state="DONE"', finished)) == 2
        listed = operator_page_client.get("/bulk-operations").text
        assert f'data-operation="{operation_id}"' in listed

    def test_stop(self, operator_page_client, runtime, seeded):
        shown = operator_page_client.get("/bulk-operations/new?action=cancel&workflow=nurture")
        assert 'data-acting="2"' in shown.text  # two runs parked in WAIT
        made = operator_page_client.post("/bulk-operations", data={
            "csrf_token": csrf_token(operator_page_client), "action": "cancel",
            "workflow": "nurture", "reason": "wrong audience"}, follow_redirects=False)
        location = made.headers["location"]
        stopped = operator_page_client.post(f"{location}/cancel", data={
            "csrf_token": csrf_token(operator_page_client)}, follow_redirects=True)
        assert "Stopped." in stopped.text
        assert 'data-status="CANCELED"' in stopped.text

    def test_nothing_to_do_and_bad_filters_say_why(self, operator_page_client, runtime,
                                                   seeded):
        for query, message in (("action=retry&workflow=nope", "Nothing to retry"),
                               ("action=retry", "give at least one filter"),
                               ("action=retry&fingerprint=zz", "16 hexadecimal digits"),
                               ("action=explode&status=FAILED", "action must be one of")):
            response = operator_page_client.get(f"/bulk-operations/new?{query}")
            assert message in html.unescape(response.text), query
            assert "Confirm" not in response.text
        refused = operator_page_client.post("/bulk-operations", data={
            "csrf_token": csrf_token(operator_page_client), "action": "retry"})
        assert refused.status_code == 422
        assert "give at least one filter" in html.unescape(refused.text)
        assert _operations(runtime) == 0

    def test_a_viewer_cannot_start_one(self, viewer_page_client, runtime, seeded):
        response = viewer_page_client.get("/bulk-operations/new?action=retry&status=FAILED")
        assert response.status_code == 403
        assert "Retry these…" not in viewer_page_client.get("/runs?status=FAILED").text

    def test_the_run_list_offers_bulk_actions_once_filtered(self, operator_page_client,
                                                            seeded):
        assert "Retry these…" not in operator_page_client.get("/runs").text
        text = html.unescape(operator_page_client.get("/runs?status=FAILED").text)
        assert "/bulk-operations/new?status=FAILED&action=retry" in text


class TestCustomRange:
    def test_retry_these_keeps_the_viewers_zone(self, operator_page_client, runtime, seeded):
        # The viewer picks a custom range in Tokyo's time (UTC+9) around one failed run;
        # the bulk operation must act on that window, not on the same clock times in UTC.
        failed = run_of(runtime, seeded.runs["payment_linus"])
        tokyo = ZoneInfo("Asia/Tokyo")
        local = failed.created_at.astimezone(tokyo).replace(tzinfo=None)
        start, end = local - timedelta(minutes=1), local + timedelta(minutes=1)
        listed = operator_page_client.get(
            "/runs?status=FAILED&range=custom&tz=Asia/Tokyo"
            f"&from={start:%Y-%m-%dT%H:%M}&to={end:%Y-%m-%dT%H:%M}")
        assert listed.status_code == 200
        [link] = re.findall(r'href="(/bulk-operations/new\?[^"]*action=retry)"', listed.text)
        link = html.unescape(link)
        assert f"from={start:%Y-%m-%dT%H:%M}%2B09:00" in link
        with session_scope(runtime.sessions) as session:
            expected = session.scalar(select(func.count()).select_from(WorkflowRun).where(
                WorkflowRun.status == "FAILED",
                WorkflowRun.created_at >= start.replace(tzinfo=tokyo),
                WorkflowRun.created_at < end.replace(tzinfo=tokyo)))
        assert expected >= 1
        shown = operator_page_client.get(link)
        assert f'data-count="{expected}"' in shown.text
