"""PUT /api/v1/providers/{channel} checks an HTTP provider's URL against the outbound
policy, as it does an SMTP host: an admin learns at once that a private target is refused
instead of from every send failing later."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from relayflow.delivery.egress import AllowList
from relayflow.services.runtime import Runtime

PATH = "/api/v1/providers/sms"


def _http(url: str) -> dict[str, object]:
    return {"type": "http", "url": url, "body": {"to": "{{ to }}", "text": "{{ body }}"}}


@pytest.fixture
def strict(runtime: Runtime) -> None:
    runtime.network_allow = AllowList()  # the default: nothing private allowed


@pytest.mark.usefixtures("strict")
class TestRefused:
    @pytest.mark.parametrize(("url", "rule"), [
        ("http://127.0.0.1:9000/messages", "loopback"), ("http://localhost/m", "loopback"),
        ("https://10.0.0.7/m", "private"), ("http://169.254.169.254/latest", "cloud metadata"),
        ("http://0x7f000001/m", "loopback"), ("http://[::ffff:127.0.0.1]/m", "loopback"),
    ])
    def test_a_private_target_is_422_naming_url(self, client: TestClient, url, rule):
        response = client.put(PATH, json=_http(url))
        assert response.status_code == 422
        [problem] = response.json()["error"]["details"]["problems"]
        assert problem.startswith("url: ")
        assert rule in problem
        assert client.get(PATH).json() == {"type": "outbox"}

    def test_a_scheme_other_than_http_is_422(self, client: TestClient):
        response = client.put(PATH, json=_http("file:///etc/passwd"))
        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"][0].startswith("url")

    def test_a_workspace_allow_list_admits_it(self, client: TestClient):
        assert client.put("/api/v1/settings/network",
                          json={"allow": ["127.0.0.0/8"]}).status_code == 200
        assert client.put(PATH, json=_http("http://127.0.0.1:9000/m")).status_code == 200

    def test_a_name_that_does_not_resolve_now_is_kept(self, client: TestClient):
        url = "https://sms.does-not-resolve.invalid/messages"
        assert client.put(PATH, json=_http(url)).status_code == 200


class TestInstanceAllowList:
    def test_the_instance_list_admits_loopback(self, client: TestClient):
        # The test settings allow 127.0.0.0/8 (RELAYFLOW_NETWORK_ALLOW).
        assert client.put(PATH, json=_http("http://127.0.0.1:9000/m")).status_code == 200
