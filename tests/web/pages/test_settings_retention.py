"""Settings → Retention: shown to everyone, changed by admins, a bad value named."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from relayflow.services import retention as retention_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle
from tests.web.pages.test_settings import audit_actions, post

PATH = "/settings/retention"


def stored(runtime: Runtime, workspace: WorkspaceHandle) -> retention_service.Retention:
    with session_scope(runtime.sessions) as session:
        return retention_service.show(session, workspace_id=workspace.id)


def test_an_admin_keeps_failures_longer(page_client: TestClient, runtime: Runtime,
                                        workspace: WorkspaceHandle) -> None:
    answer = post(page_client, PATH, {"days": " 30 ", "failed_days": "365"})
    assert answer.status_code == 303
    assert stored(runtime, workspace) == retention_service.Retention(30, 365)
    assert "retention.set" in audit_actions(runtime, workspace.id)
    page = page_client.get(answer.headers["location"]).text
    assert "Saved the retention" in page
    assert re.search(r'id="retention-days"[^>]*value="30"', page)
    assert re.search(r'id="retention-failed-days"[^>]*value="365"', page)
    assert post(page_client, PATH, {"days": "", "failed_days": ""}).status_code == 303
    assert stored(runtime, workspace) == retention_service.Retention(None, None)


def test_a_bad_value_is_named_kept_in_the_form_and_nothing_is_saved(
        page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle) -> None:
    post(page_client, PATH, {"days": "60", "failed_days": ""})
    for days, failed in (("two", ""), ("0", ""), ("", "99999999")):
        answer = post(page_client, PATH, {"days": days, "failed_days": failed})
        assert answer.status_code == 422
        text = html.unescape(answer.text)
        assert "Nothing was saved" in text
        assert "from 1 to 36500" in text
        assert re.search(rf'id="retention-days"[^>]*value="{days}"', answer.text)
    assert stored(runtime, workspace) == retention_service.Retention(60, None)


def test_others_read_it_but_cannot_change_it(
        page_client: TestClient, viewer_page_client: TestClient,
        operator_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle) -> None:
    post(page_client, PATH, {"days": "45", "failed_days": ""})
    for client in (viewer_page_client, operator_page_client):
        page = client.get(PATH)
        assert page.status_code == 200
        shown = re.search(r'id="retention">(.*?)</dl>', page.text, re.S)
        assert shown
        assert re.sub(r"<[^>]+>", " ", shown.group(1)).split() == [
            "History", "45", "days", "Failures", "as", "long", "as", "the", "rest"]
        assert post(client, PATH, {"days": "1", "failed_days": ""}).status_code == 403
    assert stored(runtime, workspace) == retention_service.Retention(45, None)
    assert 'href="/settings/retention"' in page_client.get("/settings").text
