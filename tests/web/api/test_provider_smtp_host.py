"""PUT /api/v1/providers/email checks the SMTP host against the outbound policy.

With an empty allow-list (RELAYFLOW_NETWORK_ALLOW unset, no workspace entries) a host
that is, or resolves to, a loopback or private address is refused with a 422 naming
`host`, as INTEGRATION requests and the HTTP provider are."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from relayflow.delivery.egress import AllowList
from relayflow.services.runtime import Runtime

PATH = "/api/v1/providers/email"


def _smtp(host: str) -> dict[str, object]:
    return {"type": "smtp", "host": host, "port": 25, "tls": "none", "from": "ops@relay.test"}


@pytest.fixture
def strict(runtime: Runtime) -> None:
    runtime.network_allow = AllowList()  # the default: nothing private allowed


@pytest.mark.usefixtures("strict")
class TestRefused:
    @pytest.mark.parametrize(("host", "rule"), [
        ("127.0.0.1", "loopback"), ("localhost", "loopback"), ("10.0.0.7", "private"),
        ("169.254.169.254", "cloud metadata"), ("2130706433", "loopback"),
        ("[::1]", "loopback"), ("192.168.1.20", "private"),
    ])
    def test_a_private_host_is_422_naming_host(self, client: TestClient, host, rule):
        response = client.put(PATH, json=_smtp(host))
        assert response.status_code == 422
        [problem] = response.json()["error"]["details"]["problems"]
        assert problem.startswith("host: ")
        assert rule in problem
        assert "RELAYFLOW_NETWORK_ALLOW" in problem
        assert client.get(PATH).json() == {"type": "outbox"}

    def test_a_workspace_allow_list_admits_it(self, client: TestClient):
        assert client.put("/api/v1/settings/network",
                          json={"allow": ["127.0.0.0/8"]}).status_code == 200
        assert client.put(PATH, json=_smtp("127.0.0.1")).status_code == 200

    def test_a_name_that_does_not_resolve_now_is_kept(self, client: TestClient):
        # It may resolve later; every send checks what it resolves to then.
        assert client.put(PATH, json=_smtp("smtp.does-not-resolve.invalid")).status_code == 200

    def test_an_invalid_host_is_422(self, client: TestClient):
        response = client.put(PATH, json=_smtp("smtp .example.com"))
        assert response.status_code == 422
        assert response.json()["error"]["details"]["problems"][0].startswith("host: ")


class TestInstanceAllowList:
    def test_the_instance_list_admits_loopback(self, client: TestClient):
        # The test settings allow 127.0.0.0/8 (RELAYFLOW_NETWORK_ALLOW).
        assert client.put(PATH, json=_smtp("127.0.0.1")).status_code == 200
