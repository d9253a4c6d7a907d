"""The run history page (/runs), its live row, its summary and its CSV export, against the
known history of tests/support/seed.py."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from relayflow.config import Settings
from relayflow.services import contact as contact_service
from relayflow.services import run as run_service
from relayflow.services import run_history
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import read_scope, session_scope
from relayflow.storage.models import WorkflowRun
from relayflow.storage.repositories.run import RunFilter
from relayflow.web.pages.csv_export import safe_cell
from tests.support.seed import Seeded, seed
from tests.support.worker import drain

NY = ZoneInfo("America/New_York")
# Newest first, as seed.py lays them out: label -> (workflow, contact, chip).
RUNS = {
    "nurture_linus": ("nurture", "linus", "RUNNING"),
    "lead_ada": ("lead-check", "ada", "COMPLETED"),
    "nurture_ada": ("nurture", "ada", "RUNNING"),
    "payment_linus": ("payment-failed", "linus", "FAILED"),
    "welcome_linus": ("welcome", "linus", "COMPLETED"),
    "welcome_ada_1h": ("welcome", "ada", "COMPLETED"),
    "welcome_ada_2h": ("welcome", "ada", "COMPLETED"),
    "nurture_grace": ("nurture", "grace", "CANCELED"),
    "welcome_grace": ("welcome", "grace", "COMPLETED"),
    "payment_grace": ("payment-failed", "grace", "FAILED"),
    "welcome_ada_old": ("welcome", "ada", "COMPLETED"),
}
LAST_24H = list(RUNS)[:8]
LAST_7D = list(RUNS)[:9]
LAST_30D = list(RUNS)[:10]

_ROW = re.compile(r'<tr role="row" id="run-[^"]+" data-run-id="([^"]+)"')
_CHIP = re.compile(r'data-chip="(\w+)">\s*\w+ <span class="chip-count" data-count>([\d,]+)<')
_PAGER = re.compile(r'<a class="btn" href="([^"]+)" rel="(prev|next)">')


@pytest.fixture
def seeded(runtime: Runtime, workspace, http_server) -> Seeded:
    return seed(runtime, workspace.id, http_url=http_server.url)


def labels(seeded: Seeded, text: str) -> list[str]:
    by_id = {str(run_id): label for label, run_id in seeded.runs.items()}
    return [by_id.get(run_id, run_id) for run_id in _ROW.findall(text)]


def chip_counts(text: str) -> dict[str, int]:
    return {chip: int(n.replace(",", "")) for chip, n in _CHIP.findall(text)}


def counts_of(names: list[str]) -> dict[str, int]:
    out = dict.fromkeys(("ALL", "RUNNING", "COMPLETED", "FAILED", "CANCELED"), 0)
    for name in names:
        out["ALL"] += 1
        out[RUNS[name][2]] += 1
    return out


def pager(text: str) -> dict[str, str]:
    return {rel: html.unescape(href) for href, rel in _PAGER.findall(text)}


def get(client: TestClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.text[:2000]
    if status < 400:
        assert response.template.name == "runs/list.html"  # type: ignore[attr-defined]
    return response.text


class TestRanges:
    @pytest.mark.parametrize(("query", "expected"), [
        ("", LAST_30D), ("?range=30d", LAST_30D), ("?range=7d", LAST_7D),
        ("?range=24h", LAST_24H), ("?range=custom", list(RUNS)),
    ])
    def test_rows_and_chip_counts(self, page_client, seeded, query, expected):
        text = get(page_client, f"/runs{query}")
        assert labels(seeded, text) == expected
        assert chip_counts(text) == counts_of(expected)

    def test_the_counts_are_the_known_ones(self, page_client, seeded):
        assert chip_counts(get(page_client, "/runs?range=24h")) == {
            "ALL": 8, "RUNNING": 2, "COMPLETED": 4, "FAILED": 1, "CANCELED": 1}
        assert chip_counts(get(page_client, "/runs?range=7d")) == {
            "ALL": 9, "RUNNING": 2, "COMPLETED": 5, "FAILED": 1, "CANCELED": 1}
        assert chip_counts(get(page_client, "/runs")) == {
            "ALL": 10, "RUNNING": 2, "COMPLETED": 5, "FAILED": 2, "CANCELED": 1}

    @pytest.mark.parametrize(("chip", "status"), [
        ("RUNNING", "PENDING,RUNNING"), ("COMPLETED", "COMPLETED"), ("FAILED", "FAILED"),
        ("CANCELED", "CANCELED"),
    ])
    def test_each_chip_lists_its_runs_and_keeps_the_counts(self, page_client, seeded, chip,
                                                           status):
        text = get(page_client, f"/runs?status={status}")
        assert labels(seeded, text) == [n for n in LAST_30D if RUNS[n][2] == chip]
        assert chip_counts(text) == counts_of(LAST_30D)
        assert re.search(rf'chip-active chip-{chip.lower()}"', text)

    def test_custom_times_are_read_in_the_viewers_zone(self, page_client, seeded):
        start = (seeded.now - timedelta(days=5)).astimezone(NY).strftime("%Y-%m-%dT%H:%M")
        end = (seeded.now - timedelta(minutes=100)).astimezone(NY).strftime("%Y-%m-%dT%H:%M")
        query = f"/runs?range=custom&from={start}&to={end}"
        expected = ["welcome_ada_2h", "nurture_grace", "welcome_grace"]
        text = get(page_client, f"{query}&tz=America/New_York")
        assert labels(seeded, text) == expected
        assert f'value="{end}"' in text  # the field shows what was typed, in that zone
        # The same wall-clock times read as UTC end hours earlier (New York is behind).
        assert labels(seeded, get(page_client, f"{query}&tz=UTC")) == ["welcome_grace"]
        page_client.cookies.set("rf_tz", "America/New_York")
        assert labels(seeded, get(page_client, query)) == expected

    def test_from_and_to_with_an_offset_need_no_zone(self, page_client, seeded):
        start = (seeded.now - timedelta(days=11)).isoformat()
        end = (seeded.now - timedelta(days=2)).isoformat()
        text = get(page_client, f"/runs?from={start}&to={end}".replace("+", "%2B"))
        assert labels(seeded, text) == ["welcome_grace", "payment_grace"]


class TestFilters:
    def test_workflow(self, page_client, seeded):
        text = get(page_client, "/runs?workflow=welcome")
        assert labels(seeded, text) == ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h",
                                        "welcome_grace"]
        assert chip_counts(text) == {"ALL": 4, "RUNNING": 0, "COMPLETED": 4, "FAILED": 0,
                                     "CANCELED": 0}
        assert '<option value="welcome" selected>' in text

    @pytest.mark.parametrize("contact", ["ada@example.com", " ADA@Example.com ", "+14155550101",
                                         "+1 (415) 555-0101"])
    def test_contact_by_address(self, page_client, seeded, contact):
        text = get(page_client, f"/runs?contact={contact.replace('+', '%2B')}")
        assert labels(seeded, text) == ["lead_ada", "nurture_ada", "welcome_ada_1h",
                                        "welcome_ada_2h"]

    def test_contact_by_national_number_in_the_default_region(self, page_client, seeded,
                                                              settings: Settings):
        assert get(page_client, "/runs?contact=(415) 555-0101", 422)
        settings.default_phone_region = "US"
        text = get(page_client, "/runs?contact=(415) 555-0101")
        assert labels(seeded, text)[:2] == ["lead_ada", "nurture_ada"]

    def test_contact_by_id(self, page_client, seeded):
        text = get(page_client, f"/runs?contact={seeded.contacts['grace']}&range=custom")
        assert labels(seeded, text) == ["nurture_grace", "welcome_grace", "payment_grace"]

    @pytest.mark.parametrize("query", ["contact=nobody@example.com",
                                       "contact=01a00000-0000-7000-8000-000000000000",
                                       "workflow=no-such-workflow"])
    def test_a_filter_naming_nothing_shows_the_no_match_state(self, page_client, seeded,
                                                              query):
        text = get(page_client, f"/runs?{query}")
        assert labels(seeded, text) == []
        assert "No runs match these filters" in text
        assert 'href="/runs">Clear filters</a>' in text
        assert chip_counts(text)["ALL"] == 0

    def test_combined_filters(self, page_client, seeded):
        text = get(page_client, "/runs?workflow=nurture&contact=ada@example.com"
                                "&status=PENDING,RUNNING")
        assert labels(seeded, text) == ["nurture_ada"]
        assert chip_counts(text) == counts_of(["nurture_ada"])
        text = get(page_client, f"/runs?contact={seeded.contacts['grace']}&range=7d")
        assert labels(seeded, text) == ["nurture_grace", "welcome_grace"]
        text = get(page_client, f"/runs?contact={seeded.contacts['grace']}&status=FAILED")
        assert labels(seeded, text) == ["payment_grace"]

    def test_search(self, page_client, seeded):
        text = get(page_client, "/runs?q=label:nurture_ada")
        assert labels(seeded, text) == ["nurture_ada"]
        assert chip_counts(text) == counts_of(["nurture_ada"])
        assert 'value="label:nurture_ada"' in text  # the box keeps what was typed
        text = get(page_client, "/runs?q=grace+seed&status=COMPLETED")
        assert labels(seeded, text) == ["welcome_grace"]
        assert chip_counts(text) == counts_of(["nurture_grace", "welcome_grace",
                                               "payment_grace"])
        text = get(page_client, "/runs?q=ada&workflow=welcome")
        assert labels(seeded, text) == ["welcome_ada_1h", "welcome_ada_2h"]
        failed = re.search(r'<a class="chip chip-failed" href="([^"]+)"', text)
        assert failed is not None
        assert "q=ada" in html.unescape(failed.group(1))
        text = get(page_client, "/runs?q=label:nobody")
        assert "No runs match these filters" in text
        assert "matches the search, workflow" in text
        run_id = str(seeded.runs["payment_linus"])
        assert labels(seeded, get(page_client, f"/runs?q={run_id[:13]}")) == ["payment_linus"]

    def test_chip_links_keep_every_other_filter(self, page_client, seeded):
        text = get(page_client, "/runs?workflow=welcome&contact=ada@example.com&range=7d"
                                "&limit=2&cursor=" + run_service.encode_cursor(
                                    seeded.now, seeded.runs["welcome_linus"]))
        failed = re.search(r'<a class="chip chip-failed" href="([^"]+)"', text)
        assert failed is not None
        assert html.unescape(failed.group(1)) == (
            "/runs?status=FAILED&workflow=welcome&contact=ada%40example.com&range=7d&limit=2")


class TestPaging:
    def test_older_then_newer_walks_the_same_rows_back(self, page_client, seeded):
        pages, url = [], "/runs?limit=3"
        while url:
            text = get(page_client, url)
            pages.append(labels(seeded, text))
            url = pager(text).get("next")
        assert pages == [LAST_30D[0:3], LAST_30D[3:6], LAST_30D[6:9], LAST_30D[9:]]
        back = []
        while url := pager(text).get("prev"):
            assert "limit=3" in url
            text = get(page_client, url)
            back.append(labels(seeded, text))
        assert back == [LAST_30D[6:9], LAST_30D[3:6], LAST_30D[0:3]]
        assert '<span class="btn" aria-disabled="true">← Newer</span>' in text

    def test_the_first_and_last_pages_disable_their_links(self, page_client, seeded):
        text = get(page_client, "/runs?limit=200")
        assert pager(text) == {}
        assert 'aria-disabled="true">Older →' in text

    def test_paging_links_keep_the_filters(self, page_client, seeded):
        text = get(page_client, "/runs?workflow=welcome&range=custom&limit=2")
        older = pager(text)["next"]
        assert older.startswith("/runs?workflow=welcome&range=custom&limit=2&cursor=")
        text = get(page_client, older)
        assert labels(seeded, text) == ["welcome_ada_2h", "welcome_grace"]
        assert labels(seeded, get(page_client, pager(text)["prev"])) == [
            "welcome_linus", "welcome_ada_1h"]


class TestInvalidInput:
    @pytest.mark.parametrize(("query", "message"), [
        ("status=bogus", "unknown run status BOGUS"),
        ("range=1y", "range must be one of"),
        ("range=custom&from=2025-03-02T00:00&to=2025-03-01T00:00",
         "from must not be later than to"),
        ("from=yesterday", "from is not a date and time"),
        ("cursor=not-a-cursor", "cursor is not valid"),
        ("cursor=n.bm9wZQ", "cursor is not valid"),
        ("limit=0", "limit must be a whole number from 1 to 200"),
        ("limit=500", "limit must be a whole number from 1 to 200"),
        ("limit=ten", "limit must be a whole number from 1 to 200"),
        ("contact=not-an-address", "is not a phone number"),
        ("contact=ada@", "is not an email address"),
        ("q=%22open", "a quote (\") is not closed"),
        ("q=---", "has no letters or digits"),
    ])
    def test_the_page_explains_what_is_wrong(self, page_client, query, message):
        text = get(page_client, f"/runs?{query}", 422)
        alert = re.search(r'<div class="alert alert-error runs-error" role="alert">(.*?)</div>',
                          text, re.S)
        assert alert is not None
        assert message in html.unescape(alert.group(1))
        assert 'data-run-filters' in text  # the form is there to fix it
        assert _ROW.findall(text) == []

    def test_what_was_typed_is_shown_escaped(self, page_client):
        text = get(page_client, "/runs?contact=<script>alert(1)</script>", 422)
        assert "<script>alert(1)" not in text
        assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in text


class TestAccess:
    def test_another_workspace_sees_none_of_these_runs(self, outsider_page_client, seeded):
        text = get(outsider_page_client, "/runs?range=custom")
        assert _ROW.findall(text) == []
        assert not any(str(run_id) in text for run_id in seeded.runs.values())
        assert "No runs yet" in text
        row = outsider_page_client.get(f"/runs/{seeded.runs['nurture_ada']}/row")
        assert row.status_code == 404
        exported = outsider_page_client.get("/runs.csv?range=custom")
        assert exported.text.strip().splitlines() == [",".join(_columns())]

    def test_not_signed_in_goes_to_the_sign_in_page(self, anonymous_client, seeded):
        response = anonymous_client.get("/runs?status=FAILED", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fruns%3Fstatus%3DFAILED"
        for path in ("/runs.csv", f"/runs/{seeded.runs['nurture_ada']}/row"):
            assert anonymous_client.get(path, follow_redirects=False).status_code == 303
        polled = anonymous_client.get(f"/runs/{seeded.runs['nurture_ada']}/row",
                                      headers={"X-Requested-With": "fetch"})
        assert polled.status_code == 401

    def test_an_empty_workspace_says_how_to_start_a_run(self, page_client):
        text = get(page_client, "/runs")
        assert "No runs yet" in text
        assert "Run now" in text
        assert "relayflow trigger" in text
        assert "/api/v1/workflows/{key}/runs" in text


def _columns() -> list[str]:
    return ["id", "workflow", "version", "contact", "status", "trigger", "created_at",
            "started_at", "finished_at", "duration_ms", "current_node", "error"]


def _csv(client: TestClient, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="runs-acme-')
    reader = csv.DictReader(io.StringIO(response.text))
    assert reader.fieldnames == _columns()
    return list(reader)


class TestCsvExport:
    def test_a_search_exports_what_it_finds(self, page_client, seeded):
        rows = _csv(page_client, "/runs.csv?q=grace&range=custom")
        assert [r["id"] for r in rows] == [str(seeded.runs[n]) for n in (
            "nurture_grace", "welcome_grace", "payment_grace")]

    def test_every_matching_run_whatever_the_page(self, page_client, seeded):
        rows = _csv(page_client, "/runs.csv?workflow=welcome&limit=1&cursor=ignored")
        assert [r["id"] for r in rows] == [str(seeded.runs[n]) for n in (
            "welcome_linus", "welcome_ada_1h", "welcome_ada_2h", "welcome_grace")]
        first = rows[0]
        assert (first["workflow"], first["version"], first["contact"], first["status"],
                first["trigger"], first["current_node"]) == (
            "welcome", "1", "linus@example.com", "COMPLETED", "manual", "done")
        assert first["created_at"].endswith("Z")
        failed = _csv(page_client, "/runs.csv?status=FAILED&range=custom")
        assert [r["error"] for r in failed] == [
            "Card ending 4242 was declined for linus@example.com",
            "Card ending 0000 was declined for grace@example.com"]
        canceled = _csv(page_client, "/runs.csv?status=CANCELED")[0]
        assert canceled["duration_ms"] == str(3600 * 1000)  # canceled an hour after it began

    def test_the_export_link_carries_the_filters(self, page_client, seeded):
        text = get(page_client, "/runs?workflow=welcome&status=COMPLETED&limit=2")
        assert 'href="/runs.csv?status=COMPLETED&amp;workflow=welcome"' in text

    def test_keyset_pages_cover_every_run_once(self, runtime: Runtime, workspace, seeded):
        every = list(run_history.export_rows(runtime.sessions, page_size=3,
                                             run_filter=RunFilter(workspace_id=workspace.id)))
        assert [r[0] for r in every] == [str(seeded.runs[n]) for n in RUNS]
        with read_scope(runtime.sessions) as session:  # times made text by the database
            runs = {str(run.id): run for run in session.scalars(select(WorkflowRun))}
        for row in every:
            run = runs[row[0]]
            assert [datetime.fromisoformat(t) if t else None for t in row[7:10]] == [
                run.created_at, run.started_at, run.finished_at]
            assert row[7].endswith("Z")
            assert len(row[7]) == len("2026-01-02T03:04:05.678901Z")

    def test_cells_a_spreadsheet_would_run_are_quoted(self, page_client, runtime, workspace,
                                                      seeded):
        definition = {"key": "formula", "name": "Formula", "trigger": {"type": "manual"},
                      "start": "stop", "nodes": {"stop": {
                          "type": "STOP_ERROR", "message": "=HYPERLINK(\"http://x\")"}}}
        with session_scope(runtime.sessions) as session:
            now = datetime.now(UTC)
            workflow_service.save(session, workspace_id=workspace.id, definition=definition,
                                  now=now)
            workflow = workflow_service.activate(session, workspace_id=workspace.id,
                                                 key="formula", actor="test", now=now)
            contact = contact_service.resolve(session, workspace_id=workspace.id,
                                              spec={"phone": "+14155550199"}, now=now)
            run_service.enroll(session, workflow=workflow, contact=contact,
                               trigger_type="manual", event={}, now=now)
        drain(runtime)
        row = _csv(page_client, "/runs.csv?workflow=formula")[0]
        assert row["error"] == "'=HYPERLINK(\"http://x\")"
        assert row["contact"] == "'+14155550199"

    @pytest.mark.parametrize(("value", "cell"), [
        ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"), ("a=b", "a=b"), (None, ""), (42, "42"),
    ])
    def test_safe_cell(self, value, cell):
        assert safe_cell(value) == cell


class TestLiveRow:
    def test_a_running_row_polls_until_it_finishes(self, page_client, runtime, workspace,
                                                   seeded):
        run_id = seeded.runs["nurture_ada"]
        response = page_client.get(f"/runs/{run_id}/row", headers={"X-Requested-With": "fetch"})
        assert response.status_code == 200
        assert response.template.name == "runs/_row.html"  # type: ignore[attr-defined]
        assert response.text.lstrip().startswith(f'<tr role="row" id="run-{run_id}"')
        assert f'data-live-url="/runs/{run_id}/row"' in response.text
        assert 'waiting at <code>pause</code> <span class="until">until <time' in response.text
        with session_scope(runtime.sessions) as session:
            run_service.cancel(session, workspace_id=workspace.id, run_id=run_id,
                               actor="test", now=datetime.now(UTC))
        text = page_client.get(f"/runs/{run_id}/row").text
        assert "data-live-url" not in text
        assert 'data-status="CANCELED">Canceled</span>' in text

    def test_a_pending_row_says_it_is_queued(self, page_client, runtime, workspace, seeded):
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="welcome")
            run = run_service.enroll(session, workflow=workflow, contact=None,
                                     trigger_type="webhook", event={},
                                     now=datetime.now(UTC)).run
        text = get(page_client, "/runs?status=PENDING,RUNNING")
        assert labels(seeded, text)[0] == str(run.id)
        row = page_client.get(f"/runs/{run.id}/row").text
        assert "data-live-url" in row
        assert "queued for" in row
        assert 'title="An inbound event with no contact">—' in row

    def test_the_summary_refreshes_the_counts(self, page_client, seeded):
        response = page_client.get("/runs/-/summary?range=24h")
        assert response.template.name == "runs/_summary.html"  # type: ignore[attr-defined]
        assert chip_counts(response.text) == counts_of(LAST_24H)


_BAR = re.compile(r'<g class="bar" data-start="([^"]+)" data-total="(\d+)" data-completed="(\d+)"'
                  r' data-failed="(\d+)" data-running="(\d+)" data-canceled="(\d+)">')


class TestChart:
    @pytest.mark.parametrize(("query", "seconds", "bars"), [
        ("range=24h", 3600, (24, 25)), ("range=7d", 6 * 3600, (28, 29)),
        ("range=30d", 86400, (30, 31)),
    ])
    def test_bars_add_up_to_the_chips(self, page_client, seeded, query, seconds, bars):
        text = get(page_client, f"/runs?{query}")
        assert f'data-bucket-seconds="{seconds}"' in text
        found = _BAR.findall(text)
        assert len(found) in bars
        counts = chip_counts(text)
        assert sum(int(b[1]) for b in found) == counts["ALL"]
        for i, chip in enumerate(("COMPLETED", "FAILED", "RUNNING", "CANCELED"), start=2):
            assert sum(int(b[i]) for b in found) == counts[chip]
            legend = re.search(rf'data-series="{chip}">.*?<strong data-count>(\d+)<', text)
            assert legend is not None
            assert int(legend.group(1)) == counts[chip]
        assert f'<figure class="volume" data-total="{counts["ALL"]}"' in text

    def test_the_chart_has_a_text_alternative(self, page_client, seeded):
        text = get(page_client, "/runs")
        assert '<title id="volume-title">Runs per day,' in text
        assert ('<desc id="volume-desc">10 runs: 5 completed, 2 failed, 2 running, '
                "1 canceled.") in text
        assert '<tfoot><tr><th scope="row">All</th><td class="num">5</td>' in text

    def test_the_status_filter_does_not_hide_the_other_bars(self, page_client, seeded):
        text = get(page_client, "/runs?status=FAILED")
        assert sum(int(b[1]) for b in _BAR.findall(text)) == 10

    def test_days_start_at_midnight_in_the_viewers_zone(self, page_client, seeded):
        page_client.cookies.set("rf_tz", "America/New_York")
        text = get(page_client, "/runs")
        starts = [datetime.fromisoformat(b[0]).astimezone(NY) for b in _BAR.findall(text)]
        assert starts
        assert all((s.hour, s.minute) == (0, 0) for s in starts)
        assert "times in America/New_York" in text

    def test_days_follow_a_daylight_saving_change(self, page_client, runtime, workspace,
                                                  seeded):
        # New York left daylight saving time on 2025-11-02: half past midnight is 04:30 UTC
        # before that day and 05:30 UTC after it, and both belong to their own local day.
        with session_scope(runtime.sessions) as session:
            workflow = workflow_service.get(session, workspace_id=workspace.id, key="welcome")
            for at in ("2025-10-30T04:30:00+00:00", "2025-11-03T05:30:00+00:00"):
                run_service.enroll(session, workflow=workflow, contact=None,
                                   trigger_type="webhook", event={},
                                   now=datetime.fromisoformat(at))
        text = get(page_client, "/runs?range=custom&from=2025-10-25T00:00&to=2025-11-06T00:00"
                                "&tz=America/New_York")
        busy = {b[0]: int(b[1]) for b in _BAR.findall(text) if int(b[1])}
        assert busy == {"2025-10-30T04:00:00+00:00": 1, "2025-11-03T05:00:00+00:00": 1}

    def test_a_long_custom_range_is_drawn_by_week(self, page_client, seeded):
        start = (seeded.now - timedelta(days=90)).strftime("%Y-%m-%dT%H:%M")
        text = get(page_client, f"/runs?range=custom&from={start}&tz=UTC")
        assert f'data-bucket-seconds="{7 * 86400}"' in text
        found = _BAR.findall(text)
        assert sum(int(b[1]) for b in found) == 11
        assert all(datetime.fromisoformat(b[0]).weekday() == 0 for b in found)
