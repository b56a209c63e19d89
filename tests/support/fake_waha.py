"""A fake WAHA server for tests: the HTTP endpoints the WAHA adapter calls, and WAHA-style webhooks.

`FakeWaha` is a real HTTP server on a free loopback port (stdlib `ThreadingHTTPServer` in a daemon
thread) with in-memory sessions. It checks `X-Api-Key`, records every API call in `requests`, and
sends webhooks the way WAHA documents them (https://waha.devlike.pro/docs/how-to/events/):

    body     {"id": "evt_<ulid>", "timestamp": <ms>, "event", "session", "metadata", "me",
              "payload", "engine", "environment"}  (compact JSON)
    headers  Content-Type: application/json, X-Webhook-Request-Id, X-Webhook-Timestamp (ms),
             and with `hmac.key` configured X-Webhook-Hmac (hex HMAC-SHA512 of the body) and
             X-Webhook-Hmac-Algorithm: sha512

to every webhook configured on the session that subscribes to the event (or to "*").

Timing, chosen to be test-friendly and close to WAHA:
- Webhooks caused by an API call (start, stop, logout, sendText's automatic ack) are queued with
  the change that causes them but leave only after the HTTP answer was written, as WAHA reports
  status changes asynchronously. Call `wait_deliveries()` to wait until they were posted.
- Test helpers (`pair`, `inbound`, `ack`, `emit`, `fail_session`, `send_raw`) post their webhook
  before they return. All webhooks go through one queue, so they arrive in the order they were made.
- Acks of sent messages are sent only when a test calls `ack(...)`, unless the fake was built with
  `auto_ack=<number>`, in which case every sendText is followed by that `message.ack`.
- Failed deliveries are recorded in `deliveries`, not retried (WAHA would retry).

Behaviour: start → `session.status` STARTING then SCAN_QR_CODE, or WORKING when already paired;
`pair()` → WORKING with `me`; stop → STOPPED; logout → unpaired and STOPPED; delete removes the
session without webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx

DEFAULT_API_KEY = "fake-waha-api-key-0123456789"
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
ENGINE = "WEBJS"
ENVIRONMENT = {"version": "2025.1.1", "engine": ENGINE, "tier": "CORE", "browser": None}
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
#: How often the servers look for a shutdown request (the stdlib default 0.5 s slows every teardown).
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ApiCall:
    """One API request the fake received."""

    method: str
    #: The URL path without the query, as sent (percent-encoding kept).
    path: str
    query: dict[str, str]
    #: The parsed JSON body, None when there was none.
    json: Any
    #: The X-Api-Key header, None when absent.
    api_key: str | None


@dataclass
class Delivery:
    """One webhook POST the fake made (or tried to)."""

    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    error: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The parsed body."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class FakeSession:
    """A session's state in the fake."""

    name: str
    config: dict[str, Any]
    status: str = "STOPPED"
    paired: bool = False
    phone: str = ""
    #: Recent statuses with timestamps, as WAHA reports them in `payload.statuses`.
    statuses: list[dict[str, Any]] = field(default_factory=list)
    #: Messages sent with sendText: {"id", "chatId", "text", "ack"}.
    sent: list[dict[str, Any]] = field(default_factory=list)
    qr_serial: int = 0

    @property
    def me(self) -> dict[str, str] | None:
        """The paired account as WAHA reports it, None when unpaired."""
        return {"id": f"{self.phone}@c.us", "pushName": "Fake WAHA"} if self.paired else None

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        """The configured webhooks."""
        hooks = self.config.get("webhooks") or []
        return [hook for hook in hooks if isinstance(hook, dict)]

    @property
    def metadata(self) -> dict[str, str] | None:
        """The configured metadata."""
        meta = self.config.get("metadata")
        return meta if isinstance(meta, dict) else None


class _Job:
    """One webhook POST waiting in the delivery queue."""

    def __init__(self, delivery: Delivery, *, held: bool) -> None:
        self.delivery = delivery
        # A webhook caused by an API call waits in line until that call's answer was written.
        self.released = threading.Event()
        if not held:
            self.released.set()
        self.done = threading.Event()
        self.response: httpx.Response | None = None
        self.exception: httpx.HTTPError | None = None


class _Reply:
    """What a route answers, and the webhooks it queued that may leave once the answer is written."""

    def __init__(self, status: int, body: object = None, *, raw: bytes | None = None) -> None:
        self.status = status
        self.body = body
        self.raw = raw
        self.webhooks: list[_Job] = []


def _ulid() -> str:
    """A lower-case ULID (48-bit millisecond time, 80 random bits), as WAHA's event ids use."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, message: str) -> _Reply:
    """An error answer in NestJS's shape (WAHA is a NestJS application)."""
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity"}
    return _Reply(status, {"statusCode": status, "message": message, "error": names.get(status, "Error")})


class FakeWaha:
    """A fake WAHA server; use as a context manager or call `start()` / `stop()`."""

    def __init__(
        self,
        api_key: str | None = DEFAULT_API_KEY,
        *,
        auto_ack: int | None = None,
        id_style: str = "object",
    ) -> None:
        """`api_key` None accepts any caller; `auto_ack` acks every sent message with that number;
        `id_style` "object" answers sendText with WEBJS's `id: {"_serialized": ...}`, "string" with a
        plain string id (as other WAHA engines do)."""
        if id_style not in ("object", "string"):
            raise ValueError("id_style is 'object' or 'string'")
        self.api_key = api_key
        self.auto_ack = auto_ack
        self.id_style = id_style
        self.requests: list[ApiCall] = []
        self.deliveries: list[Delivery] = []
        self.sessions: dict[str, FakeSession] = {}
        self._lock = threading.RLock()
        self._fail: list[tuple[int, bytes | None]] = []
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._client: httpx.Client | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeWaha:
        """Listen on a free loopback port and start the webhook sender."""
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._client = httpx.Client(timeout=5.0, follow_redirects=False)
        serve = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_SECONDS,), name="fake-waha", daemon=True
        )
        send = threading.Thread(target=self._deliver_forever, name="fake-waha-webhooks", daemon=True)
        self._threads = [serve, send]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and sending; queued webhooks still unsent are dropped."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._client is not None:
            self._client.close()
        self._server = None

    def __enter__(self) -> FakeWaha:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("the fake WAHA server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- test controls ---------------------------------------------------------------------------

    def fail_next(self, status: int = 500, *, body: bytes | None = None) -> None:
        """Make the next API call (after the API key check) answer `status` with `body`.

        Without `body` the answer is a NestJS-style JSON error. Calls queue up: two calls to
        fail_next fail the next two requests. A 2xx status with a garbage body simulates an
        unparsable answer.
        """
        with self._lock:
            self._fail.append((status, body))

    def session(self, name: str) -> FakeSession:
        """The named session's state (KeyError if it does not exist)."""
        with self._lock:
            return self.sessions[name]

    def pair(self, name: str, phone: str = "15550001111") -> dict[str, Any]:
        """Scan the QR code: a session showing one becomes WORKING (webhook with `me`).

        A stopped session is only marked paired, so its next start goes straight to WORKING.
        Returns the session.status payload sent (empty for a stopped session).
        """
        with self._lock:
            session = self.sessions[name]
            if session.status == "STOPPED":
                session.paired, session.phone = True, phone
                return {}
            if session.status != "SCAN_QR_CODE":
                raise ValueError(f"session {name!r} is {session.status}, not showing a QR code")
            session.paired, session.phone = True, phone
            payload = self._set_status(session, "WORKING")
            jobs = self._queue_event(session, "session.status", payload)
        self._wait(jobs)
        return payload

    def fail_session(self, name: str) -> dict[str, Any]:
        """The session fails (e.g. the phone unlinked it): FAILED, and its webhook."""
        with self._lock:
            session = self.sessions[name]
            payload = self._set_status(session, "FAILED")
            jobs = self._queue_event(session, "session.status", payload)
        self._wait(jobs)
        return payload

    def inbound(
        self, name: str, sender: str, text: str | None, message_id: str | None = None
    ) -> dict[str, Any]:
        """Someone sends `text` (None: a media message without caption) to the session: `message`.

        Returns the message payload sent, whose `id` is the message id.
        """
        with self._lock:
            session = self.sessions[name]
            short = secrets.token_hex(16).upper()
            payload: dict[str, Any] = {
                "id": message_id or f"false_{sender}_{short}",
                "timestamp": int(time.time()),
                "from": sender,
                "fromMe": False,
                "source": "app",
                "to": session.me["id"] if session.me else None,
                "body": text,
                "hasMedia": text is None,
                "media": None,
                "ack": 1,
                "ackName": "SERVER",
                "vCards": [],
                "_data": {"notifyName": "Fake Contact", "type": "chat" if text is not None else "image"},
            }
            jobs = self._queue_event(session, "message", payload)
        self._wait(jobs)
        return payload

    def ack(self, name: str, message_id: str, ack_number: int) -> dict[str, Any]:
        """WhatsApp reports on a message the session sent: `message.ack` (-1 ERROR … 4 PLAYED)."""
        if ack_number not in ACK_NAMES:
            raise ValueError(f"WAHA acks are -1..4, not {ack_number}")
        with self._lock:
            session = self.sessions[name]
            payload = self._ack_payload(session, message_id, ack_number)
            jobs = self._queue_event(session, "message.ack", payload)
        self._wait(jobs)
        return payload

    def emit(self, name: str, event: str, payload: dict[str, Any]) -> list[Delivery]:
        """Send any event with `payload` to the session's webhooks, WAHA-style; returns the deliveries."""
        with self._lock:
            jobs = self._queue_event(self.sessions[name], event, payload)
        self._wait(jobs)
        return [job.delivery for job in jobs]

    def send_raw(
        self,
        name: str,
        body: bytes,
        *,
        hmac_key: str | None = None,
        headers: Mapping[str, str | None] | None = None,
    ) -> httpx.Response:
        """POST `body` as-is to the session's (first) webhook URL, signed like WAHA would.

        `hmac_key` replaces the session's configured key; `headers` add or replace headers, and a
        None value removes one (e.g. {"X-Webhook-Hmac": None} for an unsigned request).
        Transport errors are raised.
        """
        with self._lock:
            session = self.sessions[name]
            if not session.webhooks:
                raise ValueError(f"session {name!r} has no webhook")
            hook = session.webhooks[0]
            key = hmac_key if hmac_key is not None else _hmac_key(hook)
            sent = _webhook_headers(body, key, hook)
            for header, value in (headers or {}).items():
                for existing in [h for h in sent if h.lower() == header.lower()]:
                    del sent[existing]
                if value is not None:
                    sent[header] = value
            job = self._queue_delivery(Delivery(url=str(hook["url"]), body=body, headers=sent))
        self._wait([job])
        if job.exception is not None:
            raise job.exception
        assert job.response is not None
        return job.response

    def wait_deliveries(self, timeout: float = 5.0) -> list[Delivery]:
        """Wait until every queued webhook was posted; returns all deliveries so far."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._pending} webhook(s) still unsent after {timeout}s")
                self._idle.wait(remaining)
        with self._lock:
            return list(self.deliveries)

    def events(self, name: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        """The parsed bodies of the webhooks delivered so far, optionally of one session / event."""
        with self._lock:
            bodies = [delivery.event for delivery in self.deliveries]
        return [
            body
            for body in bodies
            if (name is None or body.get("session") == name) and (event is None or body.get("event") == event)
        ]

    # --- the API ---------------------------------------------------------------------------------

    def _handle(self, method: str, raw_path: str, api_key: str | None, raw_body: bytes) -> _Reply:
        """Route one API request (called by the HTTP handler threads)."""
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        with self._lock:
            self.requests.append(ApiCall(method, parts.path, query, body, api_key))
            if self.api_key and api_key != self.api_key:
                return _error(401, "Unauthorized")
            if self._fail:
                status, failure_body = self._fail.pop(0)
                if failure_body is not None:
                    return _Reply(status, raw=failure_body)
                return _error(status, "failure requested by the test")
            if bad_json:
                return _error(400, "body is not JSON")
            return self._route(method, [unquote(p) for p in parts.path.split("/")[1:]], query, body)

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: Any) -> _Reply:
        match method, segments:
            case "POST", ["api", "sessions"] | ["api", "sessions", ""]:
                return self._create(body)
            case "POST", ["api", "sessions", name, action] if action in ("start", "stop", "logout"):
                session = self.sessions.get(name)
                if session is None:
                    return _error(404, f"Session '{name}' does not exist")
                return {"start": self._start, "stop": self._stop, "logout": self._logout}[action](session)
            case "DELETE", ["api", "sessions", name]:
                if self.sessions.pop(name, None) is None:
                    return _error(404, f"Session '{name}' does not exist")
                return _Reply(200, None)
            case "GET", ["api", name, "auth", "qr"]:
                return self._qr(name, query)
            case "POST", ["api", "sendText"]:
                return self._send_text(body)
            case "GET", ["ping"]:
                return _Reply(200, {"message": "pong"})
        return _error(404, f"Cannot {method} /{'/'.join(segments)}")

    def _create(self, body: Any) -> _Reply:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return _error(400, "name must be a non-empty string")
        config = body.get("config") or {}
        if not isinstance(config, dict):
            return _error(400, "config must be an object")
        for hook in config.get("webhooks") or []:
            if not isinstance(hook, dict) or not isinstance(hook.get("url"), str):
                return _error(400, "webhooks[].url must be a string")
            if not isinstance(hook.get("events"), list):
                return _error(400, "webhooks[].events must be an array")
        name = body["name"]
        if name in self.sessions:
            return _error(422, f"Session '{name}' already exists")
        session = FakeSession(name=name, config=config)
        self.sessions[name] = session
        # WAHA starts a new session right away unless told "start": false.
        if body.get("start", True) is not False:
            reply = self._start(session)
            reply.status = 201
            return reply
        return _Reply(201, self._dto(session))

    def _start(self, session: FakeSession) -> _Reply:
        reply = _Reply(201)
        if session.status == "STOPPED":
            starting = self._set_status(session, "STARTING")
            session.qr_serial += 1
            final = self._set_status(session, "WORKING" if session.paired else "SCAN_QR_CODE")
            reply.webhooks = [
                *self._queue_event(session, "session.status", starting, held=True),
                *self._queue_event(session, "session.status", final, held=True),
            ]
        reply.body = self._dto(session)
        return reply

    def _stop(self, session: FakeSession) -> _Reply:
        reply = _Reply(201)
        if session.status != "STOPPED":
            stopped = self._set_status(session, "STOPPED")
            reply.webhooks = self._queue_event(session, "session.status", stopped, held=True)
        reply.body = self._dto(session)
        return reply

    def _logout(self, session: FakeSession) -> _Reply:
        session.paired, session.phone = False, ""
        return self._stop(session)

    def _qr(self, name: str, query: dict[str, str]) -> _Reply:
        session = self.sessions.get(name)
        if session is None:
            return _error(404, f"Session '{name}' does not exist")
        if query.get("format") != "raw":
            return _error(400, "the fake serves only format=raw")
        if session.status != "SCAN_QR_CODE":
            return _error(422, f"Session status is not as expected: {session.status}")
        return _Reply(200, {"value": f"2@fake-qr-{name}-{session.qr_serial},{secrets.token_hex(8)}"})

    def _send_text(self, body: Any) -> _Reply:
        if not isinstance(body, dict):
            return _error(400, "body must be an object")
        name, chat_id, text = body.get("session"), body.get("chatId"), body.get("text")
        if not isinstance(chat_id, str) or not chat_id or not isinstance(text, str):
            return _error(400, "chatId and text must be strings")
        session = self.sessions.get(name) if isinstance(name, str) else None
        if session is None:
            return _error(404, f"Session '{name}' does not exist")
        if session.status != "WORKING":
            return _error(422, f"Session status is not as expected: {session.status}")
        short = "3EB0" + secrets.token_hex(8).upper()
        serialized = f"true_{chat_id}_{short}"
        session.sent.append({"id": serialized, "chatId": chat_id, "text": text, "ack": 0})
        me = session.me["id"] if session.me else None
        message_id: object = (
            {"fromMe": True, "remote": chat_id, "id": short, "_serialized": serialized}
            if self.id_style == "object"
            else serialized
        )
        reply = _Reply(
            201,
            {
                "id": message_id,
                "timestamp": int(time.time()),
                "from": me,
                "fromMe": True,
                "to": chat_id,
                "body": text,
                "type": "chat",
                "hasMedia": False,
                "ack": 0,
            },
        )
        if self.auto_ack is not None:
            payload = self._ack_payload(session, serialized, self.auto_ack)
            reply.webhooks = self._queue_event(session, "message.ack", payload, held=True)
        return reply

    def _dto(self, session: FakeSession) -> dict[str, Any]:
        dto: dict[str, Any] = {
            "name": session.name,
            "status": session.status,
            "config": session.config,
            "engine": {"engine": ENGINE},
        }
        if session.me:
            dto["me"] = session.me
        return dto

    # --- webhooks --------------------------------------------------------------------------------

    def _set_status(self, session: FakeSession, status: str) -> dict[str, Any]:
        """Change the status; returns the session.status payload for it."""
        session.status = status
        session.statuses = [*session.statuses, {"status": status, "timestamp": _now_ms()}][-3:]
        return {"name": session.name, "status": status, "statuses": list(session.statuses), "data": None}

    def _ack_payload(self, session: FakeSession, message_id: str, ack_number: int) -> dict[str, Any]:
        chat_id = None
        for message in session.sent:
            if message["id"] == message_id:
                message["ack"] = ack_number
                chat_id = message["chatId"]
        return {
            "id": message_id,
            "from": chat_id,
            "to": session.me["id"] if session.me else None,
            "participant": None,
            "fromMe": True,
            "ack": ack_number,
            "ackName": ACK_NAMES[ack_number],
        }

    def _queue_event(
        self, session: FakeSession, event: str, payload: dict[str, Any], *, held: bool = False
    ) -> list[_Job]:
        """Queue `event` for every webhook of the session subscribed to it.

        `held` jobs wait in line until the handler has written the answer of the call that caused them.
        """
        jobs = []
        for hook in session.webhooks:
            events = hook.get("events") or []
            if event not in events and "*" not in events:
                continue
            envelope: dict[str, Any] = {
                "id": f"evt_{_ulid()}",
                "timestamp": _now_ms(),
                "event": event,
                "session": session.name,
            }
            if session.metadata is not None:
                envelope["metadata"] = session.metadata
            if session.me is not None:
                envelope["me"] = session.me
            envelope.update(payload=payload, engine=ENGINE, environment=ENVIRONMENT)
            # Compact, like JavaScript's JSON.stringify, so the signed bytes are what a WAHA sends.
            body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            delivery = Delivery(
                url=str(hook["url"]), body=body, headers=_webhook_headers(body, _hmac_key(hook), hook)
            )
            jobs.append(self._queue_delivery(delivery, held=held))
        return jobs

    def _queue_delivery(self, delivery: Delivery, *, held: bool = False) -> _Job:
        job = _Job(delivery, held=held)
        self._hold(+1)
        self._queue.put(job)
        return job

    def _hold(self, change: int) -> None:
        """Count webhooks queued and not yet posted up or down."""
        with self._idle:
            self._pending += change
            self._idle.notify_all()

    def _wait(self, jobs: list[_Job], timeout: float = 10.0) -> None:
        for job in jobs:
            if not job.done.wait(timeout):
                raise TimeoutError(f"webhook to {job.delivery.url} not sent after {timeout}s")

    def _deliver_forever(self) -> None:
        """The one sender thread: posts queued webhooks in order."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.released.wait()
            delivery = job.delivery
            try:
                assert self._client is not None
                job.response = self._client.post(
                    delivery.url, content=delivery.body, headers=delivery.headers
                )
                delivery.status = job.response.status_code
            except httpx.HTTPError as exc:
                job.exception = exc
                delivery.error = type(exc).__name__
            with self._lock:
                self.deliveries.append(delivery)
            job.done.set()
            self._hold(-1)


def _hmac_key(hook: Mapping[str, Any]) -> str | None:
    config = hook.get("hmac")
    key = config.get("key") if isinstance(config, dict) else None
    return key if isinstance(key, str) and key else None


def _webhook_headers(body: bytes, key: str | None, hook: Mapping[str, Any]) -> dict[str, str]:
    """The headers WAHA sends with a webhook body (documented under "Headers" / "HMAC")."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"WAHA/{ENVIRONMENT['version']}",
        "X-Webhook-Request-Id": _ulid(),
        "X-Webhook-Timestamp": str(_now_ms()),
    }
    if key is not None:
        headers["X-Webhook-Hmac"] = hmac.new(key.encode("utf-8"), body, hashlib.sha512).hexdigest()
        headers["X-Webhook-Hmac-Algorithm"] = "sha512"
    for custom in hook.get("customHeaders") or []:
        if isinstance(custom, dict) and isinstance(custom.get("name"), str):
            headers[custom["name"]] = str(custom.get("value", ""))
    return headers


class _Handler(BaseHTTPRequestHandler):
    """HTTP glue: reads the request, lets the owning FakeWaha answer it."""

    owner: FakeWaha

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        reply = self.owner._handle(self.command, self.path, self.headers.get("X-Api-Key"), raw_body)
        try:
            self._answer(reply)
        finally:
            # Webhooks caused by the call leave after its answer, as WAHA reports them
            # asynchronously. They were queued with the change, so they keep its place in line.
            for job in reply.webhooks:
                job.released.set()

    def _answer(self, reply: _Reply) -> None:
        if reply.raw is not None:
            payload = reply.raw
        elif reply.body is None:
            payload = b""
        else:
            payload = json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@dataclass(frozen=True)
class ReceivedWebhook:
    """A request the receiver got: the exact body and the headers with lower-case names."""

    path: str
    body: bytes
    headers: dict[str, str]


class WebhookReceiver:
    """A tiny HTTP server that records every POST and answers `status` (a stand-in ingress)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[ReceivedWebhook] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookReceiver:
        """Listen on a free loopback port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(ReceivedWebhook(self.path, body, headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_SECONDS,), name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The URL webhooks should be posted to."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/webhooks/waha"
