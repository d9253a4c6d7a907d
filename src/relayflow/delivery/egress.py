"""Which outbound targets relayflow may reach on a user's behalf (the SSRF policy).

Pure: no sockets, no DNS. `delivery/guarded_http.py` resolves names, asks `check` about
every address, and connects to the address it checked.

A target is refused when any address it stands for is loopback, private (RFC 1918,
100.64.0.0/10), link-local (cloud metadata), unique-local, multicast, unspecified or
otherwise reserved, in whatever spelling the host was written (2130706433, 0x7f000001,
0177.0.0.1, 127.1, [::ffff:127.0.0.1], localhost.), unless the allow-list admits it.
The allow-list holds CIDRs (an address inside one is allowed) and host names (that name,
and whatever it resolves to, is allowed).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
HOW_TO_ALLOW = "allow it with RELAYFLOW_NETWORK_ALLOW or the workspace's network settings"

# Most specific first: the first network containing an address names its rule.
_V4_RULES: tuple[tuple[str, str], ...] = (
    ("169.254.169.254/32", "link-local (cloud metadata)"),
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "reserved ('this network')"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("100.64.0.0/10", "private (shared address space, carrier-grade NAT)"),
    ("169.254.0.0/16", "link-local"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_RULES: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fd00:ec2::254/128", "unique-local (cloud metadata)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private (site-local)"),
    ("fc00::/7", "unique-local"),
    ("ff00::/8", "multicast"),
    ("100::/64", "reserved (discard-only)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("64:ff9b:1::/48", "private (local-use NAT64)"),
)
_V4 = tuple((ipaddress.IPv4Network(n), rule) for n, rule in _V4_RULES)
_V6 = tuple((ipaddress.IPv6Network(n), rule) for n, rule in _V6_RULES)
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4-mapped
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible (deprecated)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_V4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")


class Refused(Exception):
    """The target is not allowed; the message names the rule and how to allow it."""

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(f"refused: {message}")
        self.detail = message
        self.rule = rule


class InvalidAllowList(ValueError):
    """Some allow-list entries are neither CIDRs/addresses nor host names."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# --- spellings ------------------------------------------------------------------------------


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host means the way inet_aton and browsers read it: 1 to 4
    parts, each decimal, 0x-hex or 0-octal, the last filling the remaining bytes
    (127.1, 2130706433, 0x7f.0.0.1, 0177.0.0.1). None when the host is not numeric;
    ValueError when it looks numeric but is out of range (refused rather than guessed)."""
    parts = host.split(".")
    if not parts or not all(_V4_PART.match(p) for p in parts):
        return None
    if len(parts) > 4:
        raise ValueError(f"{host} is not a valid IPv4 address")
    numbers = []
    for part in parts:
        if part[:2].lower() == "0x":
            numbers.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise ValueError(f"{host} is not a valid IPv4 address (bad octal)")
            numbers.append(int(part, 8))
        else:
            numbers.append(int(part))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host} is not a valid IPv4 address (a part is out of range)")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host(host: str) -> IPAddress | str:
    """An address in canonical form, or a lower-case host name without trailing dots.
    Raises ValueError for hosts that are neither."""
    text = unquote(host).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        address, _, _zone = text.partition("%")  # fe80::1%eth0: the zone is not the address
        try:
            return ipaddress.IPv6Address(address)
        except ValueError:
            raise ValueError(f"{host} is not a valid IPv6 address") from None
    name = text.rstrip(".").lower()
    if not name:
        raise ValueError("the URL has no host")
    last = name.rsplit(".", 1)[-1]
    if _V4_PART.match(last):  # a numeric last label makes it an address, never a name
        numeric = parse_ipv4(name)
        if numeric is None:
            raise ValueError(f"{host} is not a valid address or host name")
        return numeric
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host} is not a valid host name") from None
        if not all(_LABEL.match(label) for label in name.split(".")):
            raise ValueError(f"{host} is not a valid host name")
    return name


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, NAT64, 6to4)."""
    if address in _MAPPED:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def classify(address: IPAddress) -> str | None:
    """The rule that refuses an address, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            rule = classify(inner)
            return f"{rule}, as IPv4 inside IPv6" if rule else None
        for network6, rule in _V6:
            if address in network6:
                return rule
    else:
        for network4, rule in _V4:
            if address in network4:
                return rule
    return None if address.is_global else "reserved (not globally routable)"


# --- the allow-list ---------------------------------------------------------------------------


def _entry(text: str) -> IPNetwork | str:
    """One allow-list entry: a network (a bare address is a /32 or /128) or a host name."""
    entry = text.strip()
    if not entry:
        raise ValueError("an empty entry")
    if "://" in entry or "@" in entry:
        raise ValueError(f"{entry!r}: use a CIDR or a host name, not a URL")
    if "/" in entry:
        try:
            return ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a valid CIDR") from None
    if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
        raise ValueError(f"{entry!r}: ports are not supported; allow the host or a CIDR")
    try:
        host = parse_host(entry)
    except ValueError as exc:
        raise ValueError(f"{entry!r}: {exc}") from None
    if isinstance(host, str):
        return host
    return ipaddress.ip_network(host)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowList:
    """CIDRs and host names exempt from the refusal rules."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> AllowList:
        """From `"127.0.0.0/8, crm.internal"` or a list; InvalidAllowList lists bad entries."""
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        if isinstance(entries, str):
            items = [i for i in items if i.strip()]
        networks: list[IPNetwork] = []
        names: set[str] = set()
        problems = []
        for item in items:
            if not isinstance(item, str):
                problems.append(f"{item!r} is not a string")
                continue
            try:
                parsed = _entry(item)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if isinstance(parsed, str):
                names.add(parsed)
            elif parsed not in networks:
                networks.append(parsed)
        if problems:
            raise InvalidAllowList(problems)
        return cls(networks=tuple(networks), names=frozenset(names))

    def __or__(self, other: AllowList) -> AllowList:
        networks = self.networks + tuple(n for n in other.networks if n not in self.networks)
        return AllowList(networks=networks, names=self.names | other.names)

    def allows_name(self, name: str) -> bool:
        return name in self.names

    def allows_address(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in network or (inner is not None and inner in network)
                   for network in self.networks)


def normalized(entries: Iterable[str]) -> list[str]:
    """Entries as stored and shown: canonical CIDRs and lower-case names, in given order."""
    out: list[str] = []
    for item in entries:
        parsed = _entry(item)
        text = parsed if isinstance(parsed, str) else str(parsed)
        if text not in out:
            out.append(text)
    return out


# --- targets ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A URL taken apart: where to connect and what to call the host while there."""

    scheme: str
    host: IPAddress | str  # an address, or a name still to resolve
    port: int
    userinfo: str
    path: str  # path and query, as written
    written_host: str  # the host as it appears in the URL (for messages)

    @property
    def name(self) -> str | None:
        return self.host if isinstance(self.host, str) else None

    @property
    def host_header(self) -> str:
        host = self.host if isinstance(self.host, str) else _netloc_host(self.host)
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        """The same URL with the host replaced by the vetted address (the pinned connection)."""
        user = f"{self.userinfo}@" if self.userinfo else ""
        return f"{self.scheme}://{user}{_netloc_host(address)}:{self.port}{self.path}"


def _netloc_host(address: IPAddress) -> str:
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)


def parse_target(url: str) -> Target:
    """Take a URL apart; Refused for schemes other than http(s) and for unusable hosts."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise Refused(f"{url!r} is not a valid URL ({exc})", rule="invalid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = scheme or "(none)"
        raise Refused(f"the scheme {shown!r} is not allowed (only http and https)",
                      rule="scheme")
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    written = hostport
    if hostport.startswith("["):
        written, _, rest = hostport.partition("]")
        written += "]"
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        written, _, port_text = hostport.partition(":")
    try:
        host = parse_host(written)
        port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536 or (port_text and not port_text.isdigit()):
            raise ValueError(f"port {port_text} is out of range")
    except ValueError as exc:
        raise Refused(f"{exc}", rule="invalid host") from None
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(scheme=scheme, host=host, port=port, userinfo=userinfo, path=path,
                  written_host=written)


def check(target: Target, addresses: Sequence[IPAddress], allow: AllowList) -> None:
    """Refused unless every address is public or allowed (or the name itself is allowed)."""
    name = target.name
    if name is not None and allow.allows_name(name):
        return
    for address in addresses:
        rule = classify(address)
        if rule is None or allow.allows_address(address):
            continue
        if name is not None:
            what = f"{target.written_host} resolves to {address}, which is {rule}"
        elif str(address) != target.written_host.strip("[]"):
            what = f"{target.written_host} is {address}, which is {rule}"
        else:
            what = f"{address} is {rule}"
        raise Refused(f"{what}; {HOW_TO_ALLOW}", rule=rule)


__all__ = [
    "HOW_TO_ALLOW", "AllowList", "InvalidAllowList", "Refused", "Target", "check",
    "classify", "embedded_ipv4", "normalized", "parse_host", "parse_ipv4", "parse_target",
]
