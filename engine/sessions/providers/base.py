"""The provider interface and the provider-neutral events every adapter parses into.

An adapter drives one messaging provider (the built-in sandbox, a WAHA server, ...):
it performs session actions on the provider's API and turns the provider's webhooks
into `ProviderEvent`s. Adapters know nothing about agencies, tenants or the database;
the ingress pipeline routes their events to the session they belong to.

Session statuses are the names of `SessionStatus` without its prefix (STOPPED, STARTING,
SCAN_QR_CODE, WORKING, FAILED); message statuses those of `MessageStatus` (PENDING, SENT,
DELIVERED, READ, FAILED, RECEIVED).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class ProviderError(Exception):
    """The provider could not perform an action (unreachable, refused, timed out).

    The message is shown to callers: it must not contain credentials.
    """


class MalformedPayload(ValueError):
    """A provider webhook body that cannot be parsed into events; the message says why."""


@dataclass(frozen=True)
class ProviderSession:
    """What an adapter knows about one session."""

    session_id: str
    #: The session's name at the provider (what its webhooks call it).
    provider_session: str
    agency_id: str
    tenant_id: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SentMessage:
    """What the provider answered to a send."""

    provider_message_id: str
    status: str = "PENDING"


@dataclass(frozen=True)
class InboundMessage:
    """A message someone sent to the session's account."""

    provider_session: str
    event_id: str
    provider_message_id: str
    #: The sender's chat id, e.g. `15551234567@c.us`.
    sender: str
    text: str
    sent_at: datetime | None = None


@dataclass(frozen=True)
class MessageAck:
    """The provider's report on a message the session sent."""

    provider_session: str
    event_id: str
    provider_message_id: str
    status: str


@dataclass(frozen=True)
class SessionStatusChanged:
    """The session's status at the provider changed."""

    provider_session: str
    event_id: str
    status: str
    #: The paired account (phone number or id) when the provider reports one.
    account_id: str = ""


ProviderEvent = InboundMessage | MessageAck | SessionStatusChanged


class Provider(Protocol):
    """One messaging provider. Actions are synchronous; their effects are reported as events."""

    #: The adapter's name, as used in `/v1/webhooks/{provider}` and `Session.provider`.
    name: str
    #: Lower-case HTTP headers the adapter needs to verify a webhook; the gateway forwards them.
    signature_headers: frozenset[str]

    def create(self, session: ProviderSession) -> None:
        """Create the session at the provider (not started)."""

    def start(self, session: ProviderSession, paired: bool) -> None:
        """Start the session; its status changes arrive later as events."""

    def stop(self, session: ProviderSession) -> None:
        """Stop the session; it stays paired."""

    def logout(self, session: ProviderSession) -> None:
        """Unpair the session's account; it must scan a QR code again."""

    def delete(self, session: ProviderSession) -> None:
        """Remove the session from the provider."""

    def qr_value(self, session: ProviderSession) -> str:
        """The raw value of the pairing QR code."""

    def send_text(self, session: ProviderSession, chat_id: str, text: str) -> SentMessage:
        """Send a text message to `chat_id`."""

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True if `headers` carry the provider's valid signature of exactly `body`."""

    def close(self) -> None:
        """Release connections and threads (the engine is stopping)."""

    def check(self) -> None:
        """Raise ProviderError if the provider cannot be reached (for the admin health report)."""

    def parse_events(self, body: bytes) -> Sequence[ProviderEvent]:
        """The events in a verified webhook body; MalformedPayload if it cannot be parsed.

        Events of kinds the engine does not use are left out (an empty list is valid).
        """
