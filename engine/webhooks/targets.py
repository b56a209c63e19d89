"""Where a webhook goes and with which secrets; the SSRF guard on every outbound URL."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class DeliveryTarget:
    """A dashboard's webhook URL and the secrets to sign with (two while a secret is rotating)."""

    url: str
    secrets: tuple[str, ...]
    #: False while the dashboard is suspended or its webhooks are disabled: deliveries wait.
    active: bool = True


class TargetRefused(Exception):
    """The destination may not be called; the message says why (and is stored with the attempt)."""


@dataclass(frozen=True)
class Destination:
    """Where to connect for a webhook URL: the checked address, and the name the server expects."""

    #: The URL with its host replaced by the checked IP address (or the URL itself when unguarded).
    connect_url: str
    #: The Host header and TLS server name: the dashboard's own host name.
    host_header: str = ""
    server_name: str = ""


def check_destination(url: str, allow_private_webhook_urls: bool) -> Destination:
    """Resolve the URL's host once, refuse internal addresses, and pin the connection to the one checked.

    A dashboard URL is chosen by an outside party; without this check it could make the
    engine call services on its own network (cloud metadata endpoints, databases, ...).
    Connecting to the very address that was checked (with the original Host header and TLS
    server name) means a DNS answer that changes in between (rebinding) cannot slip through.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the dashboard URL is not an http(s) URL")
    if allow_private_webhook_urls:
        return Destination(url)
    addresses = _resolve(parts.hostname, parts.port)
    if addresses is None:
        raise TargetRefused(f"cannot resolve {parts.hostname}")
    if not all(_is_public(address) for address in addresses):
        raise TargetRefused(f"{parts.hostname} resolves to a non-public address")
    address = addresses[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc.rpartition("@")[2]
    return Destination(parts._replace(netloc=netloc).geturl(), host_header, parts.hostname)


def url_destination_problem(url: str, allow_private_webhook_urls: bool) -> str | None:
    """For registration: refuse a URL whose host resolves to an internal address.

    A host that does not resolve (yet) is accepted: every delivery checks it again.
    """
    parts = urlsplit(url)
    if allow_private_webhook_urls or not parts.hostname:
        return None
    addresses = _resolve(parts.hostname, parts.port)
    if addresses and not all(_is_public(address) for address in addresses):
        return "must not point at a loopback, private, link-local or otherwise internal address"
    return None


def _resolve(host: str, port: int | None) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast, judged by the IPv4 address an IPv6 one embeds (mapped, compatible, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and (address in _NAT64 or int(address) >> 32 == 0):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _is_public(embedded)
    return address.is_global and not address.is_multicast
