"""The SSRF guard: internal addresses in all their spellings are refused, connections are pinned to
the checked address, registration refuses inward URLs."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from engine.webhooks import targets
from engine.webhooks.targets import TargetRefused, check_destination, url_destination_problem


def resolver(answers: dict[str, list[str]]) -> Callable[..., list[tuple[object, ...]]]:
    """A stand-in getaddrinfo answering from `answers` (never the network)."""

    def getaddrinfo(host: str, port: int, **_kwargs: object) -> list[tuple[object, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    return getaddrinfo


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    answers: dict[str, list[str]] = {}
    monkeypatch.setattr(targets.socket, "getaddrinfo", resolver(answers))
    return answers


def test_the_connection_goes_to_the_checked_address_with_the_original_name(dns: dict[str, list[str]]) -> None:
    dns["hooks.example.com"] = ["93.184.216.34"]
    destination = check_destination("https://hooks.example.com:8443/in?x=1", allow_private_webhook_urls=False)
    assert destination.connect_url == "https://93.184.216.34:8443/in?x=1"
    assert destination.host_header == "hooks.example.com:8443"
    assert destination.server_name == "hooks.example.com"


def test_ipv6_addresses_are_bracketed(dns: dict[str, list[str]]) -> None:
    dns["v6.example.com"] = ["2001:4860:4860::8888"]
    destination = check_destination("http://v6.example.com/in", allow_private_webhook_urls=False)
    assert destination.connect_url == "http://[2001:4860:4860::8888]/in"


def test_a_name_with_any_internal_address_is_refused(dns: dict[str, list[str]]) -> None:
    dns["mixed.example.com"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(TargetRefused, match="non-public"):
        check_destination("https://mixed.example.com/in", allow_private_webhook_urls=False)


def test_unguarded_destinations_are_not_rewritten(dns: dict[str, list[str]]) -> None:
    destination = check_destination("http://127.0.0.1:9/in", allow_private_webhook_urls=True)
    assert destination.connect_url == "http://127.0.0.1:9/in"
    assert destination.host_header == ""


@pytest.mark.parametrize(
    ("answers", "problem"),
    [
        ({"inward.example.com": ["169.254.169.254"]}, True),
        ({"inward.example.com": ["127.0.0.1"]}, True),
        ({"inward.example.com": ["93.184.216.34"]}, False),
        ({}, False),  # does not resolve (yet): accepted, checked again at every delivery
    ],
)
def test_registration_refuses_urls_that_resolve_inward(
    dns: dict[str, list[str]], answers: dict[str, list[str]], problem: bool
) -> None:
    dns.update(answers)
    found = url_destination_problem("https://inward.example.com/hooks", allow_private_webhook_urls=False)
    assert (found is not None) is problem
    assert (
        url_destination_problem("https://inward.example.com/hooks", allow_private_webhook_urls=True) is None
    )


# -- SSRF guard -------------------------------------------------------------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1:8080/hooks",
    "http://localhost/hooks",
    "https://[::1]/hooks",
    "http://10.1.2.3/hooks",
    "http://172.16.0.9/hooks",
    "http://192.168.1.20:3000/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hooks",
    "http://[fd00::1]/hooks",
    "http://0.0.0.0/hooks",
    "http://100.64.0.1/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    # IPv4 embedded in IPv6: compatible and NAT64 forms.
    "http://[::127.0.0.1]/hooks",
    "http://[64:ff9b::a00:1]/hooks",
    # Other spellings of 127.0.0.1 that resolvers accept.
    "http://2130706433/hooks",
    "http://0177.0.0.1/hooks",
    "http://0x7f.0.0.1/hooks",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_destinations_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        check_destination(url, allow_private_webhook_urls=False)


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_destinations_are_allowed_when_configured(url: str) -> None:
    check_destination(url, allow_private_webhook_urls=True)


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hooks", "http://8.8.8.8:8080/x", "https://[2606:4700::1]/"]
)
def test_public_addresses_are_allowed(url: str) -> None:
    check_destination(url, allow_private_webhook_urls=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/hooks",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "javascript:alert(1)",
        "http://",
    ],
)
@pytest.mark.parametrize("allow", [False, True])
def test_non_http_urls_are_refused(url: str, allow: bool) -> None:
    with pytest.raises(TargetRefused, match="not an http"):
        check_destination(url, allow_private_webhook_urls=allow)


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(TargetRefused, match="cannot resolve"):
        check_destination("https://no-such-host.invalid/hooks", allow_private_webhook_urls=False)
