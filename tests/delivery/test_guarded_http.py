"""The guarded client against real servers on loopback: resolve once, check, pin, and
check every redirect hop."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relayflow.delivery import egress, guarded_http
from relayflow.delivery.egress import AllowList, IPAddress, Refused
from relayflow.delivery.guarded_http import Guard

LOOPBACK = ipaddress.ip_address("127.0.0.1")


class FakeDns:
    """Names -> answers; each lookup takes the next answer (the last one repeats)."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): a for name, a in answers.items()}
        self.lookups: list[str] = []

    def __call__(self, name: str, port: int) -> list[IPAddress]:
        self.lookups.append(name)
        queue = self.answers.get(name)
        if not queue:
            raise httpx.ConnectError(f"cannot resolve {name}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ipaddress.ip_address(a) for a in answer]


def _guard(allow: str = "", **answers: list[list[str]]) -> tuple[Guard, FakeDns]:
    dns = FakeDns(**answers)
    return Guard(allow=AllowList.parse(allow), resolve=dns), dns


def _port(server) -> int:
    return int(server.server.server_address[1])


class TestPinning:
    def test_connects_to_the_checked_address_with_the_original_host_header(self, http_server):
        guard, dns = _guard("127.0.0.0/8", api_test=[["127.0.0.1"]])
        port = _port(http_server)

        response = guarded_http.request("GET", f"http://api.test:{port}/echo", guard=guard,
                                        timeout=5)

        assert response.status_code == 200
        assert response.json()["headers"]["Host"] == f"api.test:{port}"
        assert dns.lookups == ["api.test"]

    def test_no_second_lookup_can_rebind_the_name(self, http_server):
        # The first answer is allowed, every later one is not: only one lookup is made.
        guard, dns = _guard("127.0.0.1/32", rebind_test=[["127.0.0.1"], ["10.0.0.1"]])

        response = guarded_http.request("GET", f"http://rebind.test:{_port(http_server)}/json",
                                        guard=guard, timeout=5)

        assert response.status_code == 200
        assert dns.lookups == ["rebind.test"]
        assert len(http_server.requests) == 1

    def test_every_address_of_a_name_must_pass(self, http_server):
        guard, _ = _guard("127.0.0.1/32", mixed_test=[["127.0.0.1", "169.254.169.254"]])

        with pytest.raises(Refused) as caught:
            guarded_http.request("GET", f"http://mixed.test:{_port(http_server)}/json",
                                 guard=guard, timeout=5)

        assert "cloud metadata" in str(caught.value)
        assert http_server.requests == []

    def test_an_allowed_name_may_resolve_to_a_private_address(self, http_server):
        guard, _ = _guard("crm.internal", crm_internal=[["127.0.0.1"]])

        response = guarded_http.request("POST", f"http://crm.internal:{_port(http_server)}/json",
                                        guard=guard, timeout=5, json={"a": 1})

        assert response.status_code == 200
        assert json.loads(response.json()["echo"]) == {"a": 1}

    def test_an_unresolvable_name_is_a_connection_error(self):
        guard, _ = _guard()
        with pytest.raises(httpx.ConnectError):
            guarded_http.request("GET", "http://nowhere.test/", guard=guard, timeout=5)

    def test_the_system_resolver_reads_localhost_as_loopback(self):
        assert LOOPBACK in guarded_http.system_resolve("localhost", 80)


class TestKeepAlive:
    def test_calls_to_one_target_share_a_connection(self, http_server):
        guard, dns = _guard("127.0.0.1/32", crm_test=[["127.0.0.1"]])
        url = f"http://crm.test:{_port(http_server)}/json"

        for _ in range(3):
            assert guarded_http.request("POST", url, guard=guard, timeout=5,
                                        json={"n": 1}).status_code == 200

        assert len(http_server.requests) == 3
        assert len({r.peer for r in http_server.requests}) == 1
        assert dns.lookups == ["crm.test"] * 3  # each call still resolves and checks

    def test_an_open_connection_is_no_way_past_the_policy(self, http_server):
        allowed, _ = _guard("127.0.0.1/32", crm_test=[["127.0.0.1"]])
        url = f"http://crm.test:{_port(http_server)}/json"
        guarded_http.request("GET", url, guard=allowed, timeout=5)
        refused, _ = _guard("", crm_test=[["127.0.0.1"]])

        with pytest.raises(Refused):
            guarded_http.request("GET", url, guard=refused, timeout=5)

        assert len(http_server.requests) == 1

    def test_a_body_read_only_in_part_closes_its_connection(self, http_server):
        guard, _ = _guard("127.0.0.1/32")
        url = f"{http_server.url}/json"

        first = guarded_http.request("GET", url, guard=guard, timeout=5, max_body=5)
        guarded_http.request("GET", url, guard=guard, timeout=5)

        assert first.truncated
        assert len({r.peer for r in http_server.requests}) == 2

    def test_https_connections_are_kept_per_name(self):
        def target(url: str):
            return egress.parse_target(url)

        first = guarded_http.CLIENTS.for_target(target("https://a.test/"))
        assert guarded_http.CLIENTS.for_target(target("https://a.test:8443/x")) is first
        assert guarded_http.CLIENTS.for_target(target("https://b.test/")) is not first
        plain = guarded_http.CLIENTS.for_target(target("http://a.test/"))
        assert guarded_http.CLIENTS.for_target(target("http://b.test/")) is plain
        assert plain is not first

    def test_threads_making_their_first_calls_at_once_share_one_tls_context(self):
        guarded_http._built_ssl_context.cache_clear()
        start = threading.Barrier(16)
        contexts: list[ssl.SSLContext] = []

        def first_call() -> None:
            start.wait()
            contexts.append(guarded_http._ssl_context())

        threads = [threading.Thread(target=first_call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(contexts) == 16
        assert len({id(context) for context in contexts}) == 1


class TestRedirects:
    def test_a_redirect_to_a_refused_target_is_not_followed(self, http_server):
        guard, _ = _guard("127.0.0.1/32")
        url = f"{http_server.url}/redirect?to=http://169.254.169.254/latest/meta-data/"

        with pytest.raises(Refused) as caught:
            guarded_http.request("GET", url, guard=guard, timeout=5)

        message = str(caught.value)
        assert message.startswith("refused: a redirect led to http://169.254.169.254:80")
        assert "link-local (cloud metadata)" in message
        assert "latest/meta-data" not in message  # paths may hold secrets

    def test_an_allowed_redirect_is_followed(self, http_server):
        guard, _ = _guard("127.0.0.1/32")

        response = guarded_http.request("GET", f"{http_server.url}/redirect?to=/json",
                                        guard=guard, timeout=5)

        assert response.status_code == 200
        assert response.json()["account"] == {"tier": "gold"}

    def test_credentials_stay_behind_when_the_origin_changes(self, http_server):
        guard, _ = _guard("127.0.0.0/8", other_test=[["127.0.0.1"]])
        target = f"http://other.test:{_port(http_server)}/echo"
        headers = {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y",
                   "Idempotency-Key": "idem-1"}

        response = guarded_http.request("GET", f"{http_server.url}/redirect?to={target}",
                                        guard=guard, timeout=5, headers=headers)

        seen = response.json()["headers"]
        assert "Authorization" not in seen
        assert "X-Api-Key" not in seen
        assert seen["Idempotency-Key"] == "idem-1"

    def test_credentials_are_kept_on_the_same_origin(self, http_server):
        guard, _ = _guard("127.0.0.1/32")

        response = guarded_http.request("GET", f"{http_server.url}/redirect?to=/echo",
                                        guard=guard, timeout=5,
                                        headers={"Authorization": "Bearer s3cret"})

        assert response.json()["headers"]["Authorization"] == "Bearer s3cret"

    def test_303_turns_a_post_into_a_get_without_a_body(self, http_server):
        guard, _ = _guard("127.0.0.1/32")

        response = guarded_http.request("POST", f"{http_server.url}/redirect?to=/echo&status=303",
                                        guard=guard, timeout=5, json={"x": 1})

        assert response.json()["body"] == ""
        assert [r.method for r in http_server.requests] == ["POST", "GET"]

    def test_the_hop_limit_ends_a_loop_with_the_last_redirect(self, http_server):
        guard, _ = _guard("127.0.0.1/32")
        loop = "/redirect?to=/redirect%3Fto%3D/json"
        guard = Guard(allow=guard.allow, resolve=guard.resolve, max_redirects=1)

        response = guarded_http.request("GET", f"{http_server.url}{loop}", guard=guard,
                                        timeout=5)

        assert response.status_code == 302
        assert len(http_server.requests) == 2


# --- https: the certificate name and SNI are the URL's name, not the pinned address -------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, list[str | None]]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.test")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    names: list[str | None] = []
    context.sni_callback = lambda sock, server_name, ctx: names.append(server_name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(65536)
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                b"Connection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], names
    listener.close()


def test_https_sends_the_original_name_as_sni_and_checks_the_certificate_against_it(
    tls_server,
):
    port, names = tls_server
    guard, _ = _guard("127.0.0.1/32", api_test=[["127.0.0.1"]])

    # The test certificate is self-signed: verification fails, and it fails *for api.test*.
    with pytest.raises(httpx.ConnectError) as caught:
        guarded_http.request("GET", f"https://api.test:{port}/", guard=guard, timeout=5)

    assert names == ["api.test"]
    assert "certificate" in str(caught.value).lower()
