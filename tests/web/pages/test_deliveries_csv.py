"""GET /delivery-ops.csv: every attempt the delivery ops list's filters match, streamed as
CSV, checked byte for byte against the known history of tests/support/seed.py."""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from relayflow.services import contact as contact_service
from relayflow.services import delivery_ops
from relayflow.services import run as run_service
from relayflow.services import workflow as workflow_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from relayflow.storage.models import DeliveryAttempt
from relayflow.storage.repositories.delivery import DeliveryFilter
from relayflow.web.pages.csv_export import csv_chunks
from tests.support.seed import Seeded, seed
from tests.support.worker import drain

HEADER = (b"id,run_id,workflow,contact,channel,provider,status,attempt_number,subject,error,"
          b"suppressed_by,provider_message_id,resend_of,created_at,sent_at\r\n")
# Every attempt of the seed, newest first.
ALL = ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h", "welcome_grace", "welcome_ada_old"]
_ROW = re.compile(r'<tr data-attempt="([0-9a-f-]+)"')


@pytest.fixture
def seeded(runtime: Runtime, workspace, members) -> Seeded:  # type: ignore[no-untyped-def]
    return seed(runtime, workspace.id)


def exported(client: TestClient, query: str = "") -> Response:
    response = client.get(f"/delivery-ops.csv{query}")
    assert response.status_code == 200, response.text
    return response


def ids(response: Response) -> list[str]:
    return [row["id"] for row in csv.DictReader(io.StringIO(response.text))]


def labelled(seeded: Seeded, *labels: str) -> list[str]:
    return [str(seeded.attempts[label]) for label in labels]


def utc_text(at: datetime | None) -> str:
    return "" if at is None else f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z"


def attempt(runtime: Runtime, attempt_id: uuid.UUID) -> DeliveryAttempt:
    with session_scope(runtime.sessions) as session:
        found = session.get(DeliveryAttempt, attempt_id)
        assert found is not None
        return found


class TestWire:
    def test_header_rows_and_quoting_byte_for_byte(self, page_client, runtime, seeded):
        response = exported(page_client, "?range=all")
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert re.fullmatch(r'attachment; filename="delivery-attempts-acme-\d{8}-\d{6}\.csv"',
                            response.headers["content-disposition"])
        assert response.headers["cache-control"] == "no-store"
        assert "content-length" not in response.headers  # streamed, not built whole
        body = response.content
        assert body.startswith(HEADER)
        assert body.count(b"\r\n") == 1 + len(ALL)
        assert ids(response) == labelled(seeded, *ALL)
        delivered = attempt(runtime, seeded.attempts["welcome_ada_1h"])
        # The subject holds a comma, so it is quoted; nothing else needs to be.
        assert (f"{delivered.id},{seeded.runs['welcome_ada_1h']},welcome,ada@example.com,"
                f'email,outbox,DELIVERED,1,"Welcome, Ada",,,outbox-{delivered.id},,'
                f"{utc_text(delivered.created_at)},{utc_text(delivered.sent_at)}\r\n"
                ).encode() in body
        suppressed = attempt(runtime, seeded.attempts["welcome_linus"])
        assert (f"{suppressed.id},{seeded.runs['welcome_linus']},welcome,linus@example.com,"
                f'email,outbox,SUPPRESSED,1,"Welcome, Linus",'
                f"not sent: the contact's email is unsubscribed,unsubscribed,,,"
                f"{utc_text(suppressed.created_at)},\r\n").encode() in body
        assert b"glad you are here" not in body  # the message body is not exported

    def test_cells_a_spreadsheet_would_run_are_made_safe(self, page_client, runtime,
                                                         workspace, members):
        definition = {"key": "formula", "name": "Formula", "trigger": {"type": "manual"},
                      "start": "mail", "nodes": {
                          "mail": {"type": "SEND_MESSAGE", "channel": "email",
                                   "subject": '=HYPERLINK("http://x","y")', "body": "b",
                                   "next": "text"},
                          "text": {"type": "SEND_MESSAGE", "channel": "sms", "body": "hi",
                                   "next": "done"},
                          "done": {"type": "END"}}}
        with session_scope(runtime.sessions) as session:
            now = datetime.now(UTC)
            workflow_service.save(session, workspace_id=workspace.id, definition=definition,
                                  now=now)
            workflow = workflow_service.activate(session, workspace_id=workspace.id,
                                                 key="formula", actor="test", now=now)
            contact = contact_service.resolve(session, workspace_id=workspace.id, spec={
                "email": "f@example.com", "phone": "+14155550199"}, now=now)
            run_service.enroll(session, workflow=workflow, contact=contact,
                               trigger_type="manual", event={}, now=now)
        drain(runtime)
        body = exported(page_client, "?workflow=formula").content
        assert b',"\'=HYPERLINK(""http://x"",""y"")",' in body
        assert b",'+14155550199,sms,outbox,SENT,1,," in body
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert [(r["channel"], r["contact"], r["subject"]) for r in rows] == [
            ("sms", "'+14155550199", ""),
            ("email", "f@example.com", "'=HYPERLINK(\"http://x\",\"y\")")]


# (query, the attempts it matches), newest first.
FILTERED = [
    ("", ALL[:4]),  # the list's default: the last 30 days
    ("?range=all&status=SENT", ["welcome_ada_2h", "welcome_ada_old"]),
    ("?range=24h", ["welcome_linus", "welcome_ada_1h", "welcome_ada_2h"]),
    ("?range=all&contact=ADA%40example.com",
     ["welcome_ada_1h", "welcome_ada_2h", "welcome_ada_old"]),
    ("?status=BOUNCED&workflow=welcome&channel=email", ["welcome_grace"]),
    ("?channel=sms", []),
    ("?workflow=no-such-workflow", []),
]
BAD = [
    ("channel=fax", "channel must be one of email, sms"),
    ("status=LOST", "unknown delivery status LOST"),
    ("range=custom&from=yesterday", "from is not a date and time"),
    ("range=1y", "range must be one of"),
    ("contact=not+an+address", "is not a phone number"),
]


class TestFilters:
    def test_the_lists_filters_pick_the_same_rows_as_the_list(self, page_client, seeded):
        start, end = (f"{seeded.now - timedelta(days=d):%Y-%m-%dT%H:%M:%S}" for d in (41, 39))
        custom = (f"?range=custom&from={start}&to={end}", ["welcome_ada_old"])
        for query, labels in [*FILTERED, custom]:
            found = ids(exported(page_client, query))
            assert found == labelled(seeded, *labels), query
            listed = page_client.get(f"/delivery-ops{query or '?'}&limit=200")
            assert found == _ROW.findall(listed.text), query

    def test_every_page_whatever_the_lists_paging(self, page_client, seeded):
        response = exported(page_client, "?range=all&limit=1&cursor=ignored&after=ignored")
        assert ids(response) == labelled(seeded, *ALL)

    def test_a_bad_filter_gets_the_lists_error(self, page_client):
        for query, message in BAD:
            response = page_client.get(f"/delivery-ops.csv?{query}")
            listed = page_client.get(f"/delivery-ops?{query}")
            assert (response.status_code, listed.status_code) == (422, 422), query
            assert response.headers["content-type"].startswith("text/html")
            assert "content-disposition" not in response.headers
            assert response.template.name == "deliveries/list.html"
            assert 'id="filter-error"' in response.text
            assert html.escape(message, quote=True) in response.text, query
            assert response.text == listed.text
            assert "Export CSV" not in response.text

    def test_the_lists_export_link_keeps_its_filters(self, page_client):
        text = page_client.get("/delivery-ops?status=SENT&range=all&channel=email&limit=1").text
        assert ('<a class="btn" href="/delivery-ops.csv?status=SENT&amp;channel=email&amp;'
                'range=all" download data-export>Export CSV</a>') in text
        plain = page_client.get("/delivery-ops").text
        assert 'href="/delivery-ops.csv" download data-export>Export CSV</a>' in plain


class TestAccess:
    def test_another_workspaces_attempts_are_absent(self, outsider_page_client, seeded):
        response = exported(outsider_page_client, "?range=all")
        assert response.content == HEADER
        assert re.search(r'filename="delivery-attempts-globex-',
                         response.headers["content-disposition"])

    def test_not_signed_in_goes_to_the_sign_in_page(self, anonymous_client):
        response = anonymous_client.get("/delivery-ops.csv?range=all", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == (
            "/login?next=%2Fdelivery-ops.csv%3Frange%3Dall")


class TestPaging:
    def test_keyset_pages_give_every_attempt_once(self, runtime, workspace, seeded):
        every = DeliveryFilter(workspace_id=workspace.id)
        for page_size in (1, 2, 5, 6):  # one a page, pages and a rest, exactly full, more
            # At most one too many: a wrong position could repeat rows without end.
            rows = list(islice(delivery_ops.export_rows(
                runtime.sessions, page_size=page_size, delivery_filter=every), len(ALL) + 1))
            assert [row[0] for row in rows] == labelled(seeded, *ALL), page_size

    def test_a_filter_that_matches_nothing_reads_nothing(self, runtime):
        assert list(delivery_ops.export_rows(runtime.sessions, delivery_filter=None)) == []


class TestChunks:
    def test_rows_go_out_in_chunks_of_about_the_size_asked(self):
        records = [(i, "x" * 50) for i in range(100)]
        chunks = list(csv_chunks(("n", "text"), records, chunk_bytes=1000))
        assert len(chunks) == 6  # 5,500 bytes in chunks of at least 1,000, and the rest
        assert all(len(chunk) >= 1000 for chunk in chunks[:-1])
        whole = "".join(chunks)
        assert whole.startswith("n,text\r\n0," + "x" * 50 + "\r\n")
        assert whole.count("\r\n") == 101
