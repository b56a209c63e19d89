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
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise TargetRefused(f"{parts.hostname} resolves to a non-public address")
