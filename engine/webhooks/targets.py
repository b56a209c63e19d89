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


class TargetRefused(Exception):
    """The destination may not be called; the message says why (and is stored with the attempt)."""


def check_destination(url: str, allow_private_networks: bool) -> None:
    """Refuse URLs whose host resolves to a loopback, private, link-local or otherwise internal address.

    The name is resolved again when connecting, so a DNS answer that changes in between
    (rebinding) is not caught here; an egress firewall is the complete answer.
    A dashboard URL is chosen by an outside party; without this check it could make the
    engine call services on its own network (cloud metadata endpoints, databases, ...).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the dashboard URL is not an http(s) URL")
    if allow_private_networks:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        raise TargetRefused(f"cannot resolve {parts.hostname}") from None
    for info in infos:
        if not _is_public(ipaddress.ip_address(info[4][0])):
            raise TargetRefused(f"{parts.hostname} resolves to a non-public address")


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
