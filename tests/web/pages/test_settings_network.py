"""Settings → Network: the outbound allow-list, shown to everyone, changed by admins."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from relayflow.services import network as network_service
from relayflow.services.runtime import Runtime
from relayflow.storage.db import session_scope
from tests.conftest import WorkspaceHandle
from tests.web.pages.test_settings import audit_actions, post

PATH = "/settings/network"


def stored(runtime: Runtime, workspace: WorkspaceHandle) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return network_service.show(session, workspace_id=workspace.id)


def items(page: str, list_id: str) -> list[str]:
    found = re.search(rf'id="{list_id}">(.*?)</ul>', page, re.S)
    assert found, f"#{list_id} is not a list on the page"
    return [html.unescape(i) for i in re.findall(r"<li>(.*?)</li>", found.group(1))]


class TestNetworkPage:
    def test_an_admin_saves_one_entry_per_line_normalized_and_audited(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        answer = post(page_client, PATH, {"allow": " 10.20.0.7 \n\nCRM.internal.\n"})
        assert answer.status_code == 303
        assert answer.headers["location"].startswith(PATH + "?notice=network_saved")
        assert stored(runtime, workspace) == ["10.20.0.7/32", "crm.internal"]
        assert "network.set" in audit_actions(runtime, workspace.id)
        page = page_client.get(answer.headers["location"]).text
        assert "Saved the allow-list (2 entries)" in page
        assert "10.20.0.7/32\ncrm.internal</textarea>" in page

    def test_invalid_entries_are_each_named_and_nothing_is_saved(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"allow": "10.0.0.0/8"})
        answer = post(page_client, PATH,
                      {"allow": "10.0.0.0/8\nhttp://crm.internal/\n300.1.2.3/8"})
        assert answer.status_code == 422
        assert "2 entries are not valid" in answer.text
        assert "http://crm.internal/" in html.unescape(answer.text)
        assert "300.1.2.3/8" in html.unescape(answer.text)
        # What was typed stays in the box to be corrected; the stored list is unchanged.
        assert "http://crm.internal/" in html.unescape(answer.text.split("<textarea")[1])
        assert stored(runtime, workspace) == ["10.0.0.0/8"]

    def test_an_empty_box_removes_every_exception(
        self, page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"allow": "crm.internal"})
        assert post(page_client, PATH, {"allow": "  \n"}).status_code == 303
        assert stored(runtime, workspace) == []

    def test_the_instance_list_is_shown_read_only(self, page_client: TestClient) -> None:
        # The tests' settings allow loopback (RELAYFLOW_NETWORK_ALLOW in tests/conftest.py).
        page = page_client.get(PATH).text
        assert "127.0.0.0/8" in items(page, "instance-allow")

    def test_viewers_and_operators_see_the_list_but_cannot_change_it(
        self, page_client: TestClient, viewer_page_client: TestClient,
        operator_page_client: TestClient, runtime: Runtime, workspace: WorkspaceHandle
    ) -> None:
        post(page_client, PATH, {"allow": "crm.internal"})
        for client in (viewer_page_client, operator_page_client):
            page = client.get(PATH)
            assert page.status_code == 200
            assert items(page.text, "own-allow") == ["crm.internal"]
            assert "<textarea" not in page.text
            assert post(client, PATH, {"allow": "10.0.0.0/8"}).status_code == 403
        assert stored(runtime, workspace) == ["crm.internal"]

    def test_the_settings_navigation_links_it(self, viewer_page_client: TestClient) -> None:
        assert f'href="{PATH}"' in viewer_page_client.get("/settings").text
