"""Provider adapters (sandbox, waha) behind one interface."""

from engine.sessions.providers.base import (
    InboundMessage,
    MalformedPayload,
    MessageAck,
    Provider,
    ProviderError,
    ProviderEvent,
    ProviderSession,
    SentMessage,
    SessionStatusChanged,
)

__all__ = [
    "InboundMessage",
    "MalformedPayload",
    "MessageAck",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "ProviderSession",
    "SentMessage",
    "SessionStatusChanged",
]
