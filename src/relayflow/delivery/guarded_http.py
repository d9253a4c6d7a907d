"""HTTP requests made on a user's behalf: resolved, checked and pinned, hop by hop.

For each hop (the first URL and every redirect): the host is taken apart (egress.py), a
name is resolved once with getaddrinfo, every address it returns must pass the policy,
and the connection goes to a vetted address (the URL's host replaced by it) while the
request keeps the original Host header and, for https, the original name for SNI and
certificate checks. There is no second lookup a DNS answer could rebind. Redirects are
followed here, never by httpx, up to `max_redirects`; a hop to another origin carries
only headers that hold no credentials. Proxies from the environment are not used: a
proxy would resolve the name itself.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

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


def _addresses(target: Target, guard: Guard) -> Sequence[IPAddress]:
    if not isinstance(target.host, str):
        return [target.host]
    addresses = guard.resolve(target.host, target.port)
    if not addresses:
        raise httpx.ConnectError(f"{target.host} resolves to no address")
    return addresses


def _origin(target: Target) -> tuple[str, str, int]:
    return target.scheme, str(target.host), target.port


def _send(target: Target, addresses: Sequence[IPAddress], *, method: str,
          headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
          ) -> httpx.Response:
    """One request to the first vetted address that accepts a connection."""
    sent = dict(headers)
    if not any(k.lower() == "host" for k in sent):
        sent["Host"] = target.host_header
    extensions = ({"sni_hostname": target.name}
                  if target.scheme == "https" and target.name else {})
    for index, address in enumerate(addresses):
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                return client.request(method, target.url_for(address), headers=sent,
                                      extensions=extensions, **body)
        except httpx.ConnectError:
            if index == len(addresses) - 1:
                raise
    raise AssertionError("unreachable: addresses is never empty")


def request(method: str, url: str, *, guard: Guard, timeout: float,
            headers: Mapping[str, str] | None = None, content: str | bytes | None = None,
            json: Any = None) -> httpx.Response:
    """Send a request under the guard; the final response (a 3xx only past the hop limit).

    Raises egress.Refused for a refused target (first URL or any redirect) and the usual
    httpx errors for network failures."""
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
            addresses = _addresses(target, guard)
            egress.check(target, addresses, guard.allow)
        except Refused as exc:
            if first is None:
                raise
            raise Refused(f"a redirect led to {target_of(url)}: {exc.detail}",
                          rule=exc.rule) from None
        first = first or target
        response = _send(target, addresses, method=method, headers=current_headers, body=body,
                         timeout=timeout)
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


__all__ = ["MAX_REDIRECTS", "Guard", "Refused", "request", "system_resolve", "target_of"]
