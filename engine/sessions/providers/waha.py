"""The WAHA adapter: drives sessions on a WAHA server (https://waha.devlike.pro) over its HTTP API.

Actions map onto WAHA's documented session API:

    create   POST   /api/sessions                  {"name", "start": false, "config": {...}}
    start    POST   /api/sessions/{name}/start
    stop     POST   /api/sessions/{name}/stop
    logout   POST   /api/sessions/{name}/logout
    delete   DELETE /api/sessions/{name}
    qr       GET    /api/{name}/auth/qr?format=raw  -> {"value": "..."}
    send     POST   /api/sendText                  {"session", "chatId", "text"}

The session is created with one webhook pointing at the engine's ingress, subscribed to
`message`, `message.ack` and `session.status`, and signed by WAHA with HMAC-SHA512 under
the configured webhook secret (headers `X-Webhook-Hmac` and `X-Webhook-Hmac-Algorithm`).
Our routing ids travel in the session's `config.metadata`, which WAHA echoes in every event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from engine.sessions.providers.base import (
    InboundMessage,
    MalformedPayload,
    MessageAck,
    ProviderError,
    ProviderEvent,
    ProviderSession,
    SentMessage,
    SessionStatusChanged,
)

#: The WAHA events the engine subscribes to (and the only ones `parse_events` turns into events).
WEBHOOK_EVENTS = ("message", "message.ack", "session.status")

#: WAHA's `ackName` values onto our message statuses; PLAYED (voice/video played) counts as READ.
ACK_NAMES: Mapping[str, str] = {
    "ERROR": "FAILED",
    "PENDING": "PENDING",
    "SERVER": "SENT",
    "DEVICE": "DELIVERED",
    "READ": "READ",
    "PLAYED": "READ",
}
#: WAHA's numeric `ack` values (kept by WAHA for backward compatibility) onto our message statuses.
ACK_NUMBERS: Mapping[int, str] = {-1: "FAILED", 0: "PENDING", 1: "SENT", 2: "DELIVERED", 3: "READ", 4: "READ"}

#: WAHA's session statuses onto ours. The passkey statuses are steps of pairing (WhatsApp asks for a
#: passkey instead of, or after, the QR scan), so for the engine the session is still pairing.
SESSION_STATUSES: Mapping[str, str] = {
    "STOPPED": "STOPPED",
    "STARTING": "STARTING",
    "SCAN_QR_CODE": "SCAN_QR_CODE",
    "PASSKEY_REQUIRED": "SCAN_QR_CODE",
    "PASSKEY_CONFIRMATION_REQUIRED": "SCAN_QR_CODE",
    "WORKING": "WORKING",
    "FAILED": "FAILED",
}

_HMAC_HEADER = "x-webhook-hmac"
_HMAC_ALGORITHM_HEADER = "x-webhook-hmac-algorithm"
_USER_SUFFIX = "@c.us"
_BAILEYS_USER_SUFFIX = "@s.whatsapp.net"


class WahaProvider:
    """A `Provider` backed by a WAHA server."""

    name = "waha"
    signature_headers = frozenset({_HMAC_HEADER, _HMAC_ALGORITHM_HEADER})

    def __init__(
        self,
        base_url: str,
        api_key: str,
        webhook_secret: str,
        ingress_url: str,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Talk to WAHA at `base_url`; its webhooks for our sessions go to `ingress_url`.

        `transport` replaces httpx's network transport (tests); redirects are never followed so
        the API key is not sent on to wherever a redirect points.
        """
        self._webhook_secret = webhook_secret.encode("utf-8")
        self._webhook_secret_text = webhook_secret
        self._ingress_url = ingress_url
        headers = {"Accept": "application/json"}
        if api_key:
            headers["X-Api-Key"] = api_key
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=timeout_seconds,
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP connections to WAHA."""
        self._client.close()

    def check(self) -> None:
        """Ask WAHA's `GET /ping`; ProviderError if it does not answer."""
        self._call("GET", "/ping", "ping")

    # --- actions ---------------------------------------------------------------------------------

    def create(self, session: ProviderSession) -> None:
        """Create the session at WAHA, stopped, with its metadata and our signed webhook."""
        # Our ids are written last so caller-supplied metadata cannot override the routing keys.
        metadata = {
            **session.metadata,
            "agencyId": session.agency_id,
            "tenantId": session.tenant_id,
            "sessionId": session.session_id,
        }
        webhook: dict[str, Any] = {"url": self._ingress_url, "events": list(WEBHOOK_EVENTS)}
        if self._webhook_secret_text:
            webhook["hmac"] = {"key": self._webhook_secret_text}
        body = {
            "name": session.provider_session,
            "start": False,
            "config": {"metadata": metadata, "webhooks": [webhook]},
        }
        self._call("POST", "/api/sessions", "create", json_body=body)

    def start(self, session: ProviderSession, paired: bool) -> None:
        """Start the session; WAHA itself knows whether it is paired, so `paired` is not sent."""
        self._call("POST", f"/api/sessions/{_segment(session)}/start", "start")

    def stop(self, session: ProviderSession) -> None:
        """Stop the session; it stays paired."""
        self._call("POST", f"/api/sessions/{_segment(session)}/stop", "stop")

    def logout(self, session: ProviderSession) -> None:
        """Unpair the session's account at WAHA."""
        self._call("POST", f"/api/sessions/{_segment(session)}/logout", "logout")

    def delete(self, session: ProviderSession) -> None:
        """Delete the session at WAHA; a session WAHA does not know (404) is already gone."""
        self._call("DELETE", f"/api/sessions/{_segment(session)}", "delete", missing_ok=True)

    def qr_value(self, session: ProviderSession) -> str:
        """The raw value of the pairing QR code (WAHA's `format=raw`)."""
        answer = self._call("GET", f"/api/{_segment(session)}/auth/qr", "qr", params={"format": "raw"})
        value = _json_object(answer, "qr").get("value")
        if not isinstance(value, str) or not value:
            raise ProviderError("WAHA sent no QR value to qr")
        return value

    def send_text(self, session: ProviderSession, chat_id: str, text: str) -> SentMessage:
        """Send `text` to `chat_id`; the message id is the one WAHA's later acks refer to."""
        body = {"session": session.provider_session, "chatId": chat_id, "text": text}
        answer = _json_object(self._call("POST", "/api/sendText", "sendText", json_body=body), "sendText")
        message_id = _sent_message_id(answer)
        if message_id is None:
            raise ProviderError("WAHA sent no message id to sendText")
        return SentMessage(provider_message_id=message_id, status=_sent_status(answer))

    def _call(
        self,
        method: str,
        path: str,
        action: str,
        *,
        json_body: object = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> httpx.Response:
        """One API call; every failure becomes a ProviderError naming only the action and status.

        Exception texts are left out on purpose: they can carry the URL (with credentials in it)
        or echo request data.
        """
        try:
            response = self._client.request(method, path, json=json_body, params=params)
        except httpx.TimeoutException:
            raise ProviderError(f"WAHA timed out on {action}") from None
        except httpx.HTTPError:
            raise ProviderError(f"WAHA unreachable for {action}") from None
        if missing_ok and response.status_code == 404:
            return response
        if not response.is_success:
            raise ProviderError(f"WAHA answered {response.status_code} to {action}")
        return response

    # --- webhooks --------------------------------------------------------------------------------

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True iff `x-webhook-hmac` is the hex HMAC-SHA512 of exactly `body` under our secret."""
        if not self._webhook_secret:
            # An empty key would make every signature forgeable.
            return False
        given = headers.get(_HMAC_HEADER)
        if not given:
            return False
        algorithm = headers.get(_HMAC_ALGORITHM_HEADER)
        if algorithm is not None and algorithm.strip().lower() != "sha512":
            return False
        expected = hmac.new(self._webhook_secret, body, hashlib.sha512).hexdigest()
        # Compare bytes: compare_digest refuses str with non-ASCII characters (a hostile header).
        return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace"))

    def parse_events(self, body: bytes) -> Sequence[ProviderEvent]:
        """The engine events in one WAHA webhook body (at most one); MalformedPayload if invalid."""
        envelope = _load_object(body)
        event = envelope.get("event")
        if not isinstance(event, str) or not event:
            raise MalformedPayload("'event' is missing or not a string")
        provider_session = envelope.get("session")
        if not isinstance(provider_session, str) or not provider_session:
            raise MalformedPayload("'session' is missing or not a string")
        payload = envelope.get("payload")
        if not isinstance(payload, dict):
            raise MalformedPayload("'payload' is missing or not an object")
        event_id = _event_id(envelope, body)

        if event == "message":
            if payload.get("fromMe") is True:
                # Our own sends come back through `message` on some engines; they are not inbound.
                return []
            return [
                InboundMessage(
                    provider_session=provider_session,
                    event_id=event_id,
                    provider_message_id=_required_str(payload, "id"),
                    sender=_required_str(payload, "from"),
                    text=_optional_str(payload, "body"),
                    sent_at=_sent_at(payload.get("timestamp")),
                )
            ]
        if event == "message.ack":
            return [
                MessageAck(
                    provider_session=provider_session,
                    event_id=event_id,
                    provider_message_id=_required_str(payload, "id"),
                    status=_ack_status(payload),
                )
            ]
        if event == "session.status":
            status = _required_str(payload, "status")
            if status not in SESSION_STATUSES:
                raise MalformedPayload(f"unknown session status {status[:40]!r}")
            return [
                SessionStatusChanged(
                    provider_session=provider_session,
                    event_id=event_id,
                    status=SESSION_STATUSES[status],
                    account_id=_account_id(envelope.get("me")),
                )
            ]
        return []


# --- helpers -------------------------------------------------------------------------------------


def _segment(session: ProviderSession) -> str:
    """The session name as one URL path segment (a '/' in it must not reach another endpoint)."""
    return quote(session.provider_session, safe="")


def _json_object(response: httpx.Response, action: str) -> dict[str, Any]:
    """The JSON object WAHA answered, or ProviderError."""
    try:
        value = response.json()
    except (ValueError, UnicodeDecodeError):
        raise ProviderError(f"WAHA sent an unparsable answer to {action}") from None
    if not isinstance(value, dict):
        raise ProviderError(f"WAHA sent an unparsable answer to {action}")
    return value


def _sent_message_id(answer: Mapping[str, Any]) -> str | None:
    """The serialized id of a sent message, in whichever shape the WAHA engine answers.

    WEBJS answers `"id": {"_serialized": ...}`, other engines a plain string id; NOWEB answers the
    Baileys `key`, from which WAHA's serialized form `{fromMe}_{chat}_{id}` is rebuilt.
    """
    raw = answer.get("id")
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, dict):
        serialized = raw.get("_serialized")
        if isinstance(serialized, str) and serialized:
            return serialized
    key = answer.get("key")
    if isinstance(key, dict):
        remote, key_id = key.get("remoteJid"), key.get("id")
        if isinstance(remote, str) and remote and isinstance(key_id, str) and key_id:
            from_me = "true" if key.get("fromMe", True) is True else "false"
            # WAHA writes user chats as `@c.us` where Baileys says `@s.whatsapp.net`.
            if remote.endswith(_BAILEYS_USER_SUFFIX):
                remote = remote.removesuffix(_BAILEYS_USER_SUFFIX) + _USER_SUFFIX
            return f"{from_me}_{remote}_{key_id}"
    return None


def _sent_status(answer: Mapping[str, Any]) -> str:
    """The status of a just-sent message from the answer's ack, PENDING when it has none we know."""
    name = answer.get("ackName")
    if isinstance(name, str) and name in ACK_NAMES:
        return ACK_NAMES[name]
    ack = answer.get("ack")
    if isinstance(ack, int) and not isinstance(ack, bool) and ack in ACK_NUMBERS:
        return ACK_NUMBERS[ack]
    return "PENDING"


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise MalformedPayload(f"body has the non-JSON constant {name}")


def _load_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or MalformedPayload."""
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except MalformedPayload:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedPayload("body is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedPayload("body is not a JSON object")
    return value


def _event_id(envelope: Mapping[str, Any], body: bytes) -> str:
    """WAHA's event id, or a digest of the body when WAHA sent none.

    Older WAHA versions send no `id`; a digest of the exact body keeps a redelivered (retried)
    webhook recognisable as a duplicate.
    """
    raw = envelope.get("id")
    if raw is None:
        return "sha256-" + hashlib.sha256(body).hexdigest()
    if not isinstance(raw, str) or not raw:
        raise MalformedPayload("'id' is not a string")
    return raw


def _required_str(payload: Mapping[str, Any], key: str) -> str:
    """A non-empty string field of the payload, or MalformedPayload."""
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedPayload(f"'payload.{key}' is missing or not a string")
    return value


def _optional_str(payload: Mapping[str, Any], key: str) -> str:
    """A string field that may be absent or null (a media message has no body): "" then."""
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedPayload(f"'payload.{key}' is not a string")
    return value


def _sent_at(raw: object) -> datetime | None:
    """The message's time from WAHA's Unix timestamp in seconds (None when absent)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise MalformedPayload("'payload.timestamp' is not a number")
    try:
        return datetime.fromtimestamp(raw, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise MalformedPayload("'payload.timestamp' is out of range") from None


def _ack_status(payload: Mapping[str, Any]) -> str:
    """Our message status from an ack's `ackName` (preferred, as WAHA documents) or `ack`."""
    name = payload.get("ackName")
    if name is not None and not isinstance(name, str):
        raise MalformedPayload("'payload.ackName' is not a string")
    if name is not None and name in ACK_NAMES:
        return ACK_NAMES[name]
    ack = payload.get("ack")
    if ack is None:
        raise MalformedPayload("'payload.ack' is missing")
    if isinstance(ack, bool) or not isinstance(ack, int):
        raise MalformedPayload("'payload.ack' is not an integer")
    if ack not in ACK_NUMBERS:
        raise MalformedPayload(f"unknown ack {ack}")
    return ACK_NUMBERS[ack]


def _account_id(me: object) -> str:
    """The paired account from the event's `me` (`123@c.us` → `123`); "" when not reported."""
    if me is None:
        return ""
    if not isinstance(me, dict):
        raise MalformedPayload("'me' is not an object")
    raw = me.get("id")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise MalformedPayload("'me.id' is not a string")
    return raw.removesuffix(_USER_SUFFIX)
