"""HTTP requests made on a user's behalf: resolved, checked and pinned, hop by hop.

For each hop (the first URL and every redirect): the host is taken apart (egress.py), a
name is resolved once with getaddrinfo, every address it returns must pass the policy,
and the connection goes to a vetted address (the URL's host replaced by it) while the
request keeps the original Host header and, for https, the original name for SNI and
certificate checks. There is no second lookup a DNS answer could rebind. Redirects are
followed here, never by httpx, up to `max_redirects`; a hop to another origin carries
only headers that hold no credentials. Proxies from the environment are not used: a
proxy would resolve the name itself.

`timeout` is one deadline for the whole call: every hop's connect, TLS handshake, write
and read draw on it (httpx's own timeouts bound each read, so a target that trickles a
byte a second would hold a call for as long as it likes). The body is streamed and read
up to `max_body` bytes (decoded); then the connection is closed, so an answer of any size
costs at most that much memory.

Connections are kept open between calls (HTTP keep-alive, idle for at most
KEEPALIVE_SECONDS) and reused only for the same vetted address and port, so a reused
connection goes where a new one would: every call still resolves and checks its target
against the policy of the moment first. For https they are reused only for the same name
(SNI and the certificate checked against it), never across names sharing an address.
Each thread keeps its own (see _Clients).
"""

from __future__ import annotations

import codecs
import functools
import ipaddress
import json as jsonlib
import logging
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx

from relayflow.delivery import egress
from relayflow.delivery.egress import AllowList, IPAddress, Refused, Target

Resolver = Callable[[str, int], Sequence[IPAddress]]

# httpx logs every request line (URL and query) at INFO and httpcore every response header
# at DEBUG. Requests made on a user's behalf (all of them go through here) carry
# credentials in both, and a server may echo them: these loggers speak only from WARNING.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

MAX_REDIRECTS = 5
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
# Headers kept when a redirect leads to another origin: none of them carries credentials.
CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "content-type",
                                  "content-language", "user-agent", "idempotency-key"})
# Without a `max_body`, at most this much of a body is read.
DEFAULT_MAX_BODY = 64 * 1024
# Encodings decoded here with a bound on the output (a small gzip body can inflate a
# thousandfold); asked for unless the caller sets its own Accept-Encoding.
BOUNDED_ENCODINGS = {"gzip": 47, "x-gzip": 47, "deflate": 47}  # zlib wbits: gzip or zlib
WRITE_PIECE = 16 * 1024
KEEPALIVE_SECONDS = 5.0
# Idle connections kept per pool, and pools kept (one for plain http, one per https name).
KEEPALIVE_CONNECTIONS = 64
POOLS = 32

# The deadline of the call being made in this thread: connections outlive calls, so each
# operation on one reads the deadline of the call using it now.
_deadline: ContextVar[float] = ContextVar("relayflow_http_deadline")


def system_resolve(name: str, port: int) -> list[IPAddress]:
    """Every address getaddrinfo gives for a name (IPv4 and IPv6), in its order."""
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpx.ConnectError(f"cannot resolve {name}: {exc}") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Guard:
    """The policy for one caller: the allow-list in force and how names are resolved."""

    allow: AllowList = field(default_factory=AllowList)
    resolve: Resolver = system_resolve
    max_redirects: int = MAX_REDIRECTS


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A response read under the deadline: status, headers and the first `max_body` bytes
    of the decoded body (`truncated` when there was more)."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        charset = _charset(self.headers.get("content-type", ""))
        # errors="replace": a cut can split a multi-byte character.
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.text)


def _charset(content_type: str) -> str:
    message = Message()
    message["content-type"] = content_type
    charset = message.get_content_charset() or "utf-8"
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the deadline of the call using it."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = _deadline.get() - time.monotonic()
        if left <= 0:
            raise error("the call's deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # In pieces: one write may loop over many sends, each waiting up to its timeout.
        for start in range(0, len(buffer), WRITE_PIECE):
            self._stream.write(buffer[start:start + WRITE_PIECE],
                               self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._stream.start_tls(ssl_context, server_hostname,
                                       self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sync backend, every stream it opens bound to the call's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        left = _deadline.get() - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the call's deadline passed")
        stream = self._inner.connect_tcp(host, port, min(left, timeout or left), local_address,
                                         socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not a target")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


_SSL_CONTEXT_LOCK = threading.Lock()


def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every call of the process: building one loads the CA bundle
    (tens of milliseconds), and a context is safe to share between threads. Built under a
    lock: the worker's effect threads make their first calls at the same moment, and each
    of them building its own stalled a fresh worker for seconds."""
    with _SSL_CONTEXT_LOCK:
        return _built_ssl_context()


@functools.cache
def _built_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)


def _new_client() -> tuple[httpx.Client, httpcore.ConnectionPool]:
    transport = httpx.HTTPTransport(verify=_ssl_context(), trust_env=False)
    # httpx has no way to hand httpcore a network backend, the one place every connect,
    # handshake, read and write passes through: the pool is built again with ours.
    pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(), network_backend=_DeadlineBackend(), max_connections=None,
        max_keepalive_connections=KEEPALIVE_CONNECTIONS, keepalive_expiry=KEEPALIVE_SECONDS)
    transport._pool = pool
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False), pool


class _Clients:
    """The pools of kept-open connections of the calling thread: one for plain http (a
    connection there is bound to an address and port only) and one per https name, the
    least recently used let go past POOLS.

    Why per thread: httpcore's pool looks at each of its connections, under one lock, on
    every request and every response closed; one pool shared by the worker's effect threads
    (64 calls at once) spent a tenth of the process's CPU there. A thread makes one call at
    a time, so its own pools hold a connection or two, found at once; the TLS context, the
    costly part, is still one for the process."""

    def __init__(self) -> None:
        self._local = threading.local()

    def for_target(self, target: Target) -> httpx.Client:
        key = target.name if target.scheme == "https" else None
        clients: OrderedDict[str | None, tuple[httpx.Client, httpcore.ConnectionPool]] | None
        clients = getattr(self._local, "clients", None)
        if clients is None:  # this thread's first call
            clients = self._local.clients = OrderedDict()
        entry = clients.pop(key, None) or _new_client()
        clients[key] = entry
        if len(clients) > POOLS:
            # Nothing else uses this thread's pools: every connection of the one let go is
            # idle, and is closed now.
            clients.popitem(last=False)[1][1].close()
        return entry[0]


CLIENTS = _Clients()


def _read(response: httpx.Response, max_body: int) -> tuple[bytes, bool]:
    """At most `max_body` bytes of the decoded body, and whether there was more; stops
    reading there (the caller closes the connection, never draining the rest)."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    wbits = BOUNDED_ENCODINGS.get(encoding)
    if encoding in ("", "identity") or wbits is not None:
        chunks: Iterable[bytes] = response.iter_raw()
    else:  # asked for by the caller: httpx decodes it, one network chunk at a time
        chunks = response.iter_bytes()
    inflate = zlib.decompressobj(wbits) if wbits is not None else None
    body = bytearray()
    for chunk in chunks:
        if inflate is None:
            body += chunk[:max_body - len(body)]
            if len(body) >= max_body:
                return bytes(body), True
            continue
        pending = chunk
        while pending and len(body) < max_body:
            try:
                body += inflate.decompress(pending, max_body - len(body))
            except zlib.error as exc:
                raise httpx.DecodingError(f"the {encoding} body cannot be decoded: {exc}",
                                          request=response.request) from exc
            pending = inflate.unconsumed_tail
        if len(body) >= max_body:
            return bytes(body), True
    return bytes(body), False


def resolve_target(target: Target, guard: Guard) -> Sequence[IPAddress]:
    """The addresses a target stands for: its literal address, or what its name resolves to
    (httpx.ConnectError when it resolves to nothing); not yet checked against the policy."""
    if not isinstance(target.host, str):
        return [target.host]
    addresses = guard.resolve(target.host, target.port)
    if not addresses:
        raise httpx.ConnectError(f"{target.host} resolves to no address")
    return addresses


def _origin(target: Target) -> tuple[str, str, int]:
    return target.scheme, str(target.host), target.port


def _send(target: Target, addresses: Sequence[IPAddress], *, method: str,
          headers: Mapping[str, str], body: Mapping[str, Any], deadline: float,
          max_body: int, follows: bool) -> Response:
    """One request to the first vetted address that accepts a connection, its body read
    (unless it is a redirect `follows` says will be followed)."""
    sent = dict(headers)
    lowered = {k.lower() for k in sent}
    if "host" not in lowered:
        sent["Host"] = target.host_header
    if "accept-encoding" not in lowered:
        sent["Accept-Encoding"] = "gzip, deflate"
    extensions = ({"sni_hostname": target.name}
                  if target.scheme == "https" and target.name else {})
    client = CLIENTS.for_target(target)
    token = _deadline.set(deadline)
    try:
        return _first_answer(client, target, addresses, method=method, headers=sent,
                             extensions=extensions, body=body, deadline=deadline,
                             max_body=max_body, follows=follows)
    finally:
        _deadline.reset(token)


def _first_answer(client: httpx.Client, target: Target, addresses: Sequence[IPAddress], *,
                  method: str, headers: dict[str, str], extensions: dict[str, Any],
                  body: Mapping[str, Any], deadline: float, max_body: int,
                  follows: bool) -> Response:
    for index, address in enumerate(addresses):
        try:
            with client.stream(method, target.url_for(address), headers=headers,
                               extensions=extensions,
                               timeout=max(0.001, deadline - time.monotonic()),
                               **body) as response:
                redirect = (response.status_code in REDIRECT_STATUS
                            and bool(response.headers.get("location")))
                content, truncated = ((b"", False) if redirect and follows
                                      else _read(response, max_body))
                return Response(status_code=response.status_code, headers=response.headers,
                                content=content, truncated=truncated)
        except httpx.ConnectError:
            if index == len(addresses) - 1:
                raise
    raise AssertionError("unreachable: addresses is never empty")


def request(method: str, url: str, *, guard: Guard, timeout: float,
            headers: Mapping[str, str] | None = None, content: str | bytes | None = None,
            json: Any = None, max_body: int = DEFAULT_MAX_BODY) -> Response:
    """Send a request under the guard; the final response (a 3xx only past the hop limit).

    `timeout` is the deadline of the whole call, every hop included; past it an
    httpx.TimeoutException is raised. Raises egress.Refused for a refused target (first
    URL or any redirect) and the usual httpx errors for network failures."""
    deadline = time.monotonic() + timeout
    method = method.upper()
    current_headers = dict(headers or {})
    body: dict[str, Any] = {}
    if content is not None:
        body["content"] = content
    elif json is not None:
        body["json"] = json
    first: Target | None = None
    hops = 0
    while True:
        try:
            target = egress.parse_target(url)
            addresses = resolve_target(target, guard)
            egress.check(target, addresses, guard.allow)
        except Refused as exc:
            if first is None:
                raise
            raise Refused(f"a redirect led to {target_of(url)}: {exc.detail}",
                          rule=exc.rule) from None
        first = first or target
        if time.monotonic() >= deadline:  # name resolution is not interruptible
            raise httpx.ConnectTimeout(f"resolving {target.written_host} took the deadline")
        response = _send(target, addresses, method=method, headers=current_headers, body=body,
                         deadline=deadline, max_body=max_body,
                         follows=hops < guard.max_redirects)
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUS or not location:
            return response
        if hops >= guard.max_redirects:
            return response
        hops += 1
        url = urljoin(url, location.strip())
        if response.status_code == 303 or (response.status_code in (301, 302)
                                           and method == "POST"):
            method = "GET" if method != "HEAD" else method
            body = {}
            current_headers = {k: v for k, v in current_headers.items()
                               if k.lower() not in ("content-type", "content-length")}
        try:
            following = egress.parse_target(url)
        except Refused:
            following = None
        if following is None or _origin(following) != _origin(first):
            current_headers = {k: v for k, v in current_headers.items()
                               if k.lower() in CROSS_ORIGIN_HEADERS}


def target_of(url: str) -> str:
    """A short name for where a URL points (no path or query: they may hold secrets)."""
    try:
        target = egress.parse_target(url)
    except Refused:
        return url.split("?", 1)[0][:200]
    return f"{target.scheme}://{target.written_host}:{target.port}"


__all__ = ["MAX_REDIRECTS", "Guard", "Refused", "Response", "request", "system_resolve",
           "target_of"]
