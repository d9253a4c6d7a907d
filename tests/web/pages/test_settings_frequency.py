"""Settings → Frequency caps: shown to everyone, changed by admins, each problem named."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from relayflow.services import frequency as frequency_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle
from tests.web.pages.test_settings import audit_actions, post

PATH = "/settings/frequency-caps"


def stored(runtime: Runtime, workspace: WorkspaceHandle) -> dict[str, int]:
    with session_scope(runtime.sessions) as session:
        return frequency_service.show(session, workspace_id=workspace.id)


class TestFrequencyPage:
    def test_an_admin_caps_one_channel_and_leaves_the_other_open(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        answer = post(page_client, PATH, {"email": " 3 ", "sms": ""})
        assert answer.status_code == 303
        assert stored(runtime, workspace) == {"email": 3}
        assert "frequency.set" in audit_actions(runtime, workspace.id)
        page = page_client.get(answer.headers["location"]).text
        assert "Saved the frequency caps (1 capped)" in page
        assert re.search(r'id="cap-email"[^>]*value="3"', page)
        assert re.search(r'id="cap-sms"[^>]*value=""', page)

    def test_bad_values_are_named_kept_in_the_form_and_nothing_is_saved(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"email": "5", "sms": ""})
        answer = post(page_client, PATH, {"email": "0", "sms": "two"})
        assert answer.status_code == 422
        text = html.unescape(answer.text)
        assert "email: an integer from 1 to 10000" in text
        assert "sms: an integer from 1 to 10000" in text
        assert re.search(r'id="cap-sms"[^>]*value="two"', answer.text)
        assert stored(runtime, workspace) == {"email": 5}

    def test_empty_fields_remove_the_caps(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"email": "5", "sms": "1"})
        assert post(page_client, PATH, {"email": "", "sms": ""}).status_code == 303
        assert stored(runtime, workspace) == {}

    def test_viewers_and_operators_read_the_caps_but_cannot_change_them(
        self, page_client: TestClient, viewer_page_client: TestClient,
        operator_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"email": "4", "sms": ""})
        for client in (viewer_page_client, operator_page_client):
            page = client.get(PATH)
            assert page.status_code == 200
            caps = re.search(r'id="caps">(.*?)</dl>', page.text, re.S)
            assert caps
            assert re.sub(r"<[^>]+>", " ", caps.group(1)).split() == [
                "email", "4", "sms", "no", "cap"]
            assert "<form" not in caps.group(0)
            assert post(client, PATH, {"email": "1", "sms": "1"}).status_code == 403
        assert stored(runtime, workspace) == {"email": 4}
