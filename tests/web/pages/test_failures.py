"""The /failures page, and the pages it links to filtered by one cause."""

from __future__ import annotations

import html
import re

import pytest

from relayflow.services.runtime import Runtime
from tests.support.flows import run_of
from tests.support.seed import Seeded, seed

_ROW = re.compile(r'<tr data-fingerprint="([0-9a-f]{16})"')
_RUN_ROW = re.compile(r'data-run-id="([0-9a-f-]+)"')


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def _cells(text: str, fingerprint: str) -> str:
    start = text.index(f'<tr data-fingerprint="{fingerprint}"')
    return text[start:text.index("</tr>", start)]


class TestFailuresPage:
    def test_one_row_per_cause_over_the_default_week(self, page_client, runtime, seeded):
        response = page_client.get("/failures")
        assert response.status_code == 200
        assert response.template.name == "failures/list.html"
        linus = run_of(runtime, seeded.runs["payment_linus"])
        grace = run_of(runtime, seeded.runs["payment_grace"])
        assert linus.fingerprint == grace.fingerprint  # one cause, two contacts
        found = _ROW.findall(response.text)
        assert linus.fingerprint in found
        assert len(found) == 2  # the run's cause, and the bounce 3 days ago
        row = html.unescape(_cells(response.text, linus.fingerprint))
        assert "Card ending &lt;number&gt;" in _cells(response.text, linus.fingerprint)
        assert "StopError" in row
        assert f"/runs?status=FAILED&fingerprint={linus.fingerprint}&range=custom" in row
        assert "/workflows/payment-failed?node=stop" in row
        assert "Retry all…" in row
        assert re.search(r'<td class="num">1</td>\s*<td class="num">1</td>', row)  # 10 d ago: out

    def test_thirty_days_count_both_runs_of_the_cause(self, page_client, runtime, seeded):
        response = page_client.get("/failures?range=30d&kind=run")
        linus = run_of(runtime, seeded.runs["payment_linus"])
        assert _ROW.findall(response.text) == [linus.fingerprint]
        assert re.search(r'<td class="num">2</td>\s*<td class="num">2</td>',
                         _cells(response.text, linus.fingerprint))

    def test_deliveries_alone(self, page_client, seeded):
        response = page_client.get("/failures?kind=delivery")
        [fingerprint] = _ROW.findall(response.text)
        row = html.unescape(_cells(response.text, fingerprint))
        assert "bounce hard" in row
        assert f"/delivery-ops?fingerprint={fingerprint}&range=all" in row
        assert "Retry all…" not in row

    def test_a_viewer_sees_no_retry(self, viewer_page_client, seeded):
        response = viewer_page_client.get("/failures")
        assert response.status_code == 200
        assert "Retry all…" not in response.text

    def test_bad_filters_say_why_and_keep_the_form(self, page_client, seeded):
        for query, message in (("range=2d", "range must be one of"),
                               ("kind=runs", "kind must be one of"),
                               ("cursor=nope", "cursor is not valid")):
            response = page_client.get(f"/failures?{query}")
            assert response.status_code == 422
            assert message in html.unescape(response.text)
            assert 'aria-label="Filter failures"' in response.text

    def test_an_empty_range_says_so(self, page_client, seeded):
        response = page_client.get("/failures?workflow=welcome&kind=run")
        assert "No failures in this range" in response.text

    def test_signed_out_is_sent_to_sign_in(self, app):  # type: ignore[no-untyped-def]
        from fastapi.testclient import TestClient
        with TestClient(app) as client:
            response = client.get("/failures", follow_redirects=False)
        assert response.status_code in (302, 303)
        assert "/login" in response.headers["location"]


class TestFilteredByCause:
    def test_runs_of_one_cause(self, page_client, runtime, seeded):
        fingerprint = run_of(runtime, seeded.runs["payment_linus"]).fingerprint
        response = page_client.get(f"/runs?status=FAILED&fingerprint={fingerprint}&range=custom")
        assert response.status_code == 200
        text = html.unescape(response.text)
        assert "Failed runs of one cause" in text
        assert "Card ending <number> was declined" in text
        ids = set(_RUN_ROW.findall(response.text))
        assert ids == {str(seeded.runs["payment_linus"]), str(seeded.runs["payment_grace"])}

    def test_attempts_of_one_cause(self, page_client, runtime, seeded):
        page = page_client.get("/failures?kind=delivery")
        [fingerprint] = _ROW.findall(page.text)
        response = page_client.get(f"/delivery-ops?fingerprint={fingerprint}&range=all")
        assert response.status_code == 200
        assert re.findall(r'<tr data-attempt="([0-9a-f-]+)"', response.text) == [
            str(seeded.attempts["welcome_grace"])]

    def test_a_malformed_fingerprint_is_explained(self, page_client, seeded):
        response = page_client.get("/runs?fingerprint=zz")
        assert response.status_code == 422
        assert "16 hexadecimal digits" in response.text

    def test_the_graph_marks_the_node(self, page_client, seeded):
        response = page_client.get("/workflows/payment-failed?node=stop")
        assert 'data-node="stop" data-state="failed"' in response.text
        plain = page_client.get("/workflows/payment-failed?node=nope")
        assert 'data-state="failed"' not in plain.text
