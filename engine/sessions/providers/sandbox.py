"""The built-in sandbox provider: a simulated WhatsApp account in the engine's own process.

It behaves like a real provider seen from the outside: actions return at once, and what
follows (the QR code, pairing, message acks) arrives later as signed webhook bodies that
go through the same ingress pipeline as any provider's. Pairing completes by itself after
`pairing_seconds`; sent messages are reported sent, delivered and read `ack_seconds` apart.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.ids import new_id
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

log = logging.getLogger("engine.sandbox")

SIGNATURE_HEADER = "x-sandbox-signature"
#: Receives each webhook the sandbox sends: (provider name, raw body, headers).
Sink = Callable[[str, bytes, Mapping[str, str]], object]

_STATUSES = frozenset({"STOPPED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED"})
_ACK_STATUSES = frozenset({"PENDING", "SENT", "DELIVERED", "READ", "FAILED"})


@dataclass
class _Account:
    """What the simulated phone knows about one session."""

    generation: int = 0
    qr_value: str = ""
    account_id: str = ""


class SandboxProvider:
    """A provider with no outside dependency; the engine's default."""

    name = "sandbox"
    signature_headers = frozenset({SIGNATURE_HEADER})

    def __init__(self, signing_key: bytes, pairing_seconds: float, ack_seconds: float = 0.05) -> None:
        self._key = signing_key
        self._pairing_seconds = pairing_seconds
        self._ack_seconds = ack_seconds
        self._accounts: dict[str, _Account] = {}
        self._lock = threading.Lock()
        self._sink: Sink | None = None
        self._timeline = _Timeline()

    def attach(self, sink: Sink) -> None:
        """Send the sandbox's webhooks to `sink` (the ingress pipeline)."""
        self._sink = sink

    def close(self) -> None:
        """Stop sending scheduled events."""
        self._timeline.close()

    def check(self) -> None:
        """The sandbox runs in this process: always reachable."""

    # -- session actions -----------------------------------------------------------------------

    def create(self, session: ProviderSession) -> None:
        """Create the simulated account of a session."""
        self._account(session.provider_session)

    def start(self, session: ProviderSession, paired: bool) -> None:
        """Report WORKING if paired; otherwise SCAN_QR_CODE now and WORKING after pairing."""
        name = session.provider_session
        with self._lock:
            account = self._account(name)
            account.generation += 1
            generation = account.generation
            if not paired:
                account.account_id = ""
                account.qr_value = f"sandbox-pair:{name}:{secrets.token_urlsafe(16)}"
        if paired:
            self._later(0.0, name, generation, self._status_event, "WORKING")
            return
        self._later(0.0, name, generation, self._status_event, "SCAN_QR_CODE")
        self._later(self._pairing_seconds, name, generation, self._paired)

    def stop(self, session: ProviderSession) -> None:
        """Cancel whatever the session was about to report."""
        with self._lock:
            self._account(session.provider_session).generation += 1

    def logout(self, session: ProviderSession) -> None:
        """Forget the paired account."""
        with self._lock:
            account = self._account(session.provider_session)
            account.generation += 1
            account.account_id = ""

    def delete(self, session: ProviderSession) -> None:
        """Forget the session."""
        with self._lock:
            self._accounts.pop(session.provider_session, None)

    def qr_value(self, session: ProviderSession) -> str:
        """The QR value shown while pairing."""
        with self._lock:
            value = self._account(session.provider_session).qr_value
        if not value:
            raise ProviderError("the sandbox session is not waiting to pair")
        return value

    def send_text(self, session: ProviderSession, chat_id: str, text: str) -> SentMessage:
        """Accept the message, then report it sent, delivered and read."""
        message_id = new_id("sbxmsg")
        for step, status in enumerate(("SENT", "DELIVERED", "READ"), start=1):
            self._later(
                self._ack_seconds * step,
                session.provider_session,
                None,
                self._deliver,
                "message.ack",
                {"id": message_id, "status": status},
            )
        return SentMessage(message_id, "PENDING")

    def simulate_inbound(self, session: ProviderSession, sender: str, text: str) -> str:
        """Deliver an inbound message now, through the ingress pipeline; return its provider id."""
        message_id = new_id("sbxmsg")
        payload = {"id": message_id, "from": sender, "body": text, "timestamp": int(time.time())}
        self._deliver(session.provider_session, "message", payload)
        return message_id

    # -- webhooks --------------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        """The signature header value of `body`."""
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def verify_signature(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True if `headers` carry the sandbox's signature of exactly `body`."""
        return hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), self.sign(body))

    def parse_events(self, body: bytes) -> Sequence[ProviderEvent]:
        """The one event of a sandbox webhook body."""
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise MalformedPayload("the body is not JSON") from None
        if not isinstance(document, dict):
            raise MalformedPayload("the body is not a JSON object")
        event_id, kind, name, payload = (document.get(k) for k in ("id", "event", "session", "payload"))
        if not (isinstance(event_id, str) and isinstance(kind, str) and isinstance(name, str)):
            raise MalformedPayload("id, event and session must be strings")
        if not isinstance(payload, dict):
            raise MalformedPayload("payload must be an object")
        try:
            if kind == "message":
                sent = payload.get("timestamp")
                return [
                    InboundMessage(
                        name,
                        event_id,
                        str(payload["id"]),
                        str(payload["from"]),
                        str(payload["body"]),
                        datetime.fromtimestamp(sent, UTC) if isinstance(sent, int) else None,
                    )
                ]
            if kind == "message.ack" and payload.get("status") in _ACK_STATUSES:
                return [MessageAck(name, event_id, str(payload["id"]), payload["status"])]
            if kind == "session.status" and payload.get("status") in _STATUSES:
                return [SessionStatusChanged(name, event_id, payload["status"], str(payload.get("me", "")))]
        except KeyError as missing:
            raise MalformedPayload(f"payload.{missing.args[0]} is missing") from None
        raise MalformedPayload(f"unknown event {kind!r} or status")

    # -- the simulated phone -------------------------------------------------------------------

    def _account(self, name: str) -> _Account:
        return self._accounts.setdefault(name, _Account())

    def _later(
        self, delay: float, name: str, generation: int | None, action: Callable[..., None], *args: Any
    ) -> None:
        """Run `action(name, *args)` after `delay`, unless the session moved on (generation changed)."""

        def run() -> None:
            if generation is not None:
                with self._lock:
                    if self._account(name).generation != generation:
                        return
            action(name, *args)

        self._timeline.at(time.monotonic() + delay, run)

    def _paired(self, name: str) -> None:
        with self._lock:
            account = self._account(name)
            account.qr_value = ""
            account.account_id = _phone_number()
        self._status_event(name, "WORKING")

    def _status_event(self, name: str, status: str) -> None:
        with self._lock:
            account_id = self._account(name).account_id
        payload = {"status": status, "me": account_id if status == "WORKING" else ""}
        self._deliver(name, "session.status", payload)

    def _deliver(self, name: str, kind: str, payload: dict[str, Any]) -> None:
        body = json.dumps(
            {"id": new_id("sbxevt"), "event": kind, "session": name, "payload": payload}
        ).encode()
        if self._sink is None:
            raise ProviderError("the sandbox is not attached to the ingress")
        self._sink(self.name, body, {SIGNATURE_HEADER: self.sign(body)})


def _phone_number() -> str:
    return "1555" + "".join(secrets.choice("0123456789") for _ in range(7))


class _Timeline:
    """One thread running callbacks at their due time, in order (a scheduler without a thread per timer)."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def at(self, due: float, callback: Callable[[], None]) -> None:
        """Run `callback` at monotonic time `due` (after everything due before it)."""
        with self._ready:
            if self._closed:
                return
            heapq.heappush(self._queue, (due, next(self._order), callback))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox", daemon=True)
                self._thread.start()
            self._ready.notify()

    def close(self) -> None:
        """Drop what is pending and stop the thread."""
        with self._ready:
            self._closed = True
            self._queue.clear()
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._ready.wait(timeout)
                if self._closed:
                    return
                _, _, callback = heapq.heappop(self._queue)
            try:
                callback()
            except Exception:
                log.exception("sandbox event could not be delivered")
