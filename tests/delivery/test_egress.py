"""The egress policy, pure: spellings, classification, allow-lists (no sockets, no DNS)."""

from __future__ import annotations

import ipaddress

import pytest

from relayflow.delivery import egress
from relayflow.delivery.egress import AllowList, InvalidAllowList, Refused

# (host as written in the URL, the address it means, a word of the rule that refuses it)
REFUSED_LITERALS = [
    ("127.0.0.1", "127.0.0.1", "loopback"),
    ("127.1", "127.0.0.1", "loopback"),
    ("127.0.1", "127.0.0.1", "loopback"),
    ("2130706433", "127.0.0.1", "loopback"),
    ("0x7f000001", "127.0.0.1", "loopback"),
    ("0X7F000001", "127.0.0.1", "loopback"),
    ("0x7f.0.0.1", "127.0.0.1", "loopback"),
    ("0x7f.1", "127.0.0.1", "loopback"),
    ("0177.0.0.1", "127.0.0.1", "loopback"),
    ("0177.1", "127.0.0.1", "loopback"),
    ("017700000001", "127.0.0.1", "loopback"),
    ("127.000.000.001", "127.0.0.1", "loopback"),
    ("127.255.255.254", "127.255.255.254", "loopback"),
    ("127.0.0.1.", "127.0.0.1", "loopback"),
    ("%31%32%37.0.0.1", "127.0.0.1", "loopback"),
    ("[::1]", "::1", "loopback"),
    ("[0:0:0:0:0:0:0:1]", "::1", "loopback"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1", "loopback"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1", "loopback"),
    ("[0:0:0:0:0:ffff:7f00:1]", "::ffff:7f00:1", "loopback"),
    ("[::127.0.0.1]", "::7f00:1", "loopback"),
    ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1", "loopback"),
    ("[2002:7f00:1::]", "2002:7f00:1::", "loopback"),
    ("0", "0.0.0.0", "unspecified"),
    ("0.0.0.0", "0.0.0.0", "unspecified"),
    ("0x0", "0.0.0.0", "unspecified"),
    ("[::]", "::", "unspecified"),
    ("0.1.2.3", "0.1.2.3", "this network"),
    ("10.0.0.1", "10.0.0.1", "RFC 1918"),
    ("10.1", "10.0.0.1", "RFC 1918"),
    ("167772161", "10.0.0.1", "RFC 1918"),
    ("012.0.0.1", "10.0.0.1", "RFC 1918"),
    ("172.16.0.1", "172.16.0.1", "RFC 1918"),
    ("172.31.255.255", "172.31.255.255", "RFC 1918"),
    ("192.168.0.1", "192.168.0.1", "RFC 1918"),
    ("0xc0.0xa8.1.1", "192.168.1.1", "RFC 1918"),
    ("[::ffff:192.168.1.1]", "::ffff:c0a8:101", "RFC 1918"),
    ("100.64.0.1", "100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "100.127.255.254", "carrier-grade NAT"),
    ("169.254.169.254", "169.254.169.254", "cloud metadata"),
    ("2852039166", "169.254.169.254", "cloud metadata"),
    ("0xa9fea9fe", "169.254.169.254", "cloud metadata"),
    ("0251.0376.0251.0376", "169.254.169.254", "cloud metadata"),
    ("[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe", "cloud metadata"),
    ("[fd00:ec2::254]", "fd00:ec2::254", "cloud metadata"),
    ("169.254.1.1", "169.254.1.1", "link-local"),
    ("[fe80::1]", "fe80::1", "link-local"),
    ("[fe80::1%25eth0]", "fe80::1", "link-local"),
    ("[febf::1]", "febf::1", "link-local"),
    ("[fc00::1]", "fc00::1", "unique-local"),
    ("[fd12:3456::1]", "fd12:3456::1", "unique-local"),
    ("[fec0::1]", "fec0::1", "site-local"),
    ("224.0.0.1", "224.0.0.1", "multicast"),
    ("239.255.255.250", "239.255.255.250", "multicast"),
    ("[ff02::1]", "ff02::1", "multicast"),
    ("[ff0e::1]", "ff0e::1", "multicast"),
    ("255.255.255.255", "255.255.255.255", "broadcast"),
    ("0xffffffff", "255.255.255.255", "broadcast"),
    ("240.0.0.1", "240.0.0.1", "reserved"),
    ("192.0.2.1", "192.0.2.1", "documentation"),
    ("198.51.100.7", "198.51.100.7", "documentation"),
    ("203.0.113.9", "203.0.113.9", "documentation"),
    ("198.18.0.1", "198.18.0.1", "benchmarking"),
    ("192.0.0.8", "192.0.0.8", "IETF"),
    ("[2001:db8::1]", "2001:db8::1", "documentation"),
    ("[100::1]", "100::1", "discard"),
    ("[64:ff9b:1::1]", "64:ff9b:1::1", "NAT64"),
]

PUBLIC_LITERALS = [
    ("8.8.8.8", "8.8.8.8"),
    ("1.1.1.1", "1.1.1.1"),
    ("134744072", "8.8.8.8"),
    ("0x08080808", "8.8.8.8"),
    ("93.184.216.34", "93.184.216.34"),
    ("100.63.255.255", "100.63.255.255"),  # just below 100.64.0.0/10
    ("100.128.0.1", "100.128.0.1"),  # just above it
    ("172.15.255.255", "172.15.255.255"),
    ("172.32.0.1", "172.32.0.1"),
    ("[2606:4700:4700::1111]", "2606:4700:4700::1111"),
    ("[::ffff:8.8.8.8]", "::ffff:808:808"),
]

INVALID_HOSTS = ["1.2.3.4.5", "256.0.0.1", "0x100000000", "08.0.0.1", "4294967296",
                 "127.0.0.256", "example.123", "[::1::2]", "[zz::1]", "a..b", "-bad.example"]

BAD_SCHEMES = ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "ftp://example.com/f",
               "data:text/plain,hi", "dict://127.0.0.1:11211/stat", "ldap://x/",
               "javascript:alert(1)", "ws://example.com/", "//example.com/no-scheme",
               "example.com/no-scheme", "jar:http://x!/", "netdoc:///etc/passwd"]


def _target(host: str, port: int = 8080) -> egress.Target:
    return egress.parse_target(f"http://{host}:{port}/path?q=1")


class TestSpellings:
    @pytest.mark.parametrize(("host", "address", "rule"), REFUSED_LITERALS,
                             ids=[h for h, _, _ in REFUSED_LITERALS])
    def test_every_spelling_is_read_as_the_address_and_refused(self, host, address, rule):
        target = _target(host)

        assert target.host == ipaddress.ip_address(address)
        with pytest.raises(Refused) as caught:
            egress.check(target, [target.host], AllowList())
        assert rule in caught.value.rule
        assert rule in str(caught.value)
        assert "RELAYFLOW_NETWORK_ALLOW" in str(caught.value)

    @pytest.mark.parametrize(("host", "address"), PUBLIC_LITERALS,
                             ids=[h for h, _ in PUBLIC_LITERALS])
    def test_public_addresses_pass(self, host, address):
        target = _target(host)

        assert target.host == ipaddress.ip_address(address)
        egress.check(target, [target.host], AllowList())

    @pytest.mark.parametrize("host", INVALID_HOSTS)
    def test_numeric_looking_hosts_that_are_no_address_are_refused(self, host):
        with pytest.raises(Refused) as caught:
            _target(host)
        assert caught.value.rule in ("invalid host", "invalid URL")

    @pytest.mark.parametrize("url", BAD_SCHEMES)
    def test_schemes_other_than_http_and_https_are_refused(self, url):
        with pytest.raises(Refused) as caught:
            egress.parse_target(url)
        assert caught.value.rule == "scheme"
        assert "only http and https" in str(caught.value)

    def test_names_are_lowercased_and_lose_trailing_dots(self):
        assert _target("LocalHost.").host == "localhost"
        assert _target("API.Example.com..").host == "api.example.com"

    def test_userinfo_does_not_hide_the_host(self):
        target = egress.parse_target("http://example.com@127.0.0.1:81/")
        assert target.host == ipaddress.ip_address("127.0.0.1")
        assert target.userinfo == "example.com"

    def test_a_backslash_trick_names_the_host_that_is_connected_to(self):
        target = egress.parse_target("http://127.0.0.1\\@example.com/")
        assert target.host == "example.com"  # and example.com is what gets resolved

    def test_bad_ports_are_refused(self):
        for url in ("http://example.com:0/", "http://example.com:65536/",
                    "http://example.com:8o/"):
            with pytest.raises(Refused):
                egress.parse_target(url)


class TestTarget:
    def test_pinned_url_keeps_path_query_and_port_and_host_header_keeps_the_name(self):
        target = egress.parse_target("https://api.example.com/v1/x?a=1&b=2")
        address = ipaddress.ip_address("93.184.216.34")

        assert target.url_for(address) == "https://93.184.216.34:443/v1/x?a=1&b=2"
        assert target.host_header == "api.example.com"
        assert target.name == "api.example.com"

    def test_ipv6_addresses_are_bracketed_and_ports_kept_in_the_host_header(self):
        target = egress.parse_target("http://api.example.com:8080/")
        address = ipaddress.ip_address("2606:4700::1")

        assert target.url_for(address) == "http://[2606:4700::1]:8080/"
        assert target.host_header == "api.example.com:8080"


class TestNames:
    def test_a_name_resolving_to_loopback_is_refused_naming_both(self):
        target = _target("localhost")
        with pytest.raises(Refused) as caught:
            egress.check(target, [ipaddress.ip_address("127.0.0.1")], AllowList())
        assert "localhost resolves to 127.0.0.1, which is loopback" in str(caught.value)

    def test_every_resolved_address_must_pass(self):
        target = _target("mixed.example")
        addresses = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]
        with pytest.raises(Refused) as caught:
            egress.check(target, addresses, AllowList())
        assert "10.0.0.5" in str(caught.value)

    def test_a_name_resolving_to_public_addresses_passes(self):
        egress.check(_target("example.com"), [ipaddress.ip_address("93.184.216.34"),
                                              ipaddress.ip_address("2606:2800::1")], AllowList())


class TestAllowList:
    def test_parses_cidrs_addresses_and_names(self):
        allow = AllowList.parse(" 127.0.0.0/8, ::1 ,crm.internal., 10.1.2.3 ")

        assert allow.networks == (ipaddress.ip_network("127.0.0.0/8"),
                                  ipaddress.ip_network("::1/128"),
                                  ipaddress.ip_network("10.1.2.3/32"))
        assert allow.names == frozenset({"crm.internal"})

    def test_empty_text_allows_nothing(self):
        assert AllowList.parse("") == AllowList()

    def test_bad_entries_are_all_listed(self):
        with pytest.raises(InvalidAllowList) as caught:
            AllowList.parse(["http://crm.internal", "crm.internal:8080", "10.0.0.0/33",
                             "", "bad..name", "ok.internal", "[::1]:80", "1.2.3.4.5"])
        assert len(caught.value.problems) == 7

    def test_a_cidr_allows_addresses_inside_it_only(self):
        allow = AllowList.parse("127.0.0.0/8")
        egress.check(_target("127.0.0.1"), [ipaddress.ip_address("127.0.0.1")], allow)
        egress.check(_target("2130706433"), [ipaddress.ip_address("127.0.0.1")], allow)
        with pytest.raises(Refused):
            egress.check(_target("10.0.0.1"), [ipaddress.ip_address("10.0.0.1")], allow)

    def test_an_ipv4_cidr_covers_its_mapped_ipv6_form(self):
        allow = AllowList.parse("127.0.0.0/8")
        target = _target("[::ffff:127.0.0.1]")
        egress.check(target, [target.host], allow)  # type: ignore[list-item]

    def test_a_name_allows_that_name_and_what_it_resolves_to_only(self):
        allow = AllowList.parse("crm.internal")
        private = [ipaddress.ip_address("10.0.0.7")]
        egress.check(_target("crm.internal"), private, allow)
        egress.check(_target("CRM.internal."), private, allow)
        with pytest.raises(Refused):
            egress.check(_target("other.internal"), private, allow)
        with pytest.raises(Refused):
            egress.check(_target("10.0.0.7"), private, allow)

    def test_lists_combine(self):
        both = AllowList.parse("10.0.0.0/8") | AllowList.parse("crm.internal,10.0.0.0/8")
        assert both.networks == (ipaddress.ip_network("10.0.0.0/8"),)
        assert both.names == frozenset({"crm.internal"})

    def test_normalized_entries_are_canonical_and_unique(self):
        assert egress.normalized(["10.1.2.3/8", "CRM.internal.", "crm.internal", "::1"]) == [
            "10.0.0.0/8", "crm.internal", "::1/128"]


def test_the_spelling_table_has_at_least_40_refused_targets():
    assert len(REFUSED_LITERALS) + len(INVALID_HOSTS) + len(BAD_SCHEMES) >= 40
