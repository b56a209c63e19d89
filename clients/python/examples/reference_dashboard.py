#!/usr/bin/env python3
"""A reference dashboard: registers with the engine, runs a sandbox session and verifies every webhook.

Run it next to `make run` (which allows local dashboard URLs and writes var/dev.env):

    .venv/bin/python clients/python/examples/reference_dashboard.py            # keeps running
    .venv/bin/python clients/python/examples/reference_dashboard.py --once     # exits after one inbound

What it does:
1. starts a small HTTP receiver on 127.0.0.1 (`--port`, default 8787);
2. registers agency `--agency-id` with the receiver's URL as `dashboardUrl` and a fresh
   `whsec_` secret. If the agency's API key is in the state file (`--state-file`) from an
   earlier run, it keeps that key and moves the registration to the new URL and secret with
   `update_config` (PSK); if the agency is registered but its key is unknown, it rotates the key
   with the PSK;
3. creates a sandbox session, starts it, shows the pairing QR value, and waits for WORKING;
4. sends a message and simulates an inbound one;
5. verifies every webhook twice, the HMAC `v1` signature with its secret and the Ed25519 `v1a`
   signature with the engine's public key, answers 204 (or 400 when a check fails) and prints
   each event.

Settings: `ENGINE_GRPC_TARGET` (default 127.0.0.1:50051) and `WORKFLOW_ENGINE_INTERNAL_PSK`
from the environment; when the PSK is not set, it is read from `--env-file` (var/dev.env).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workflow_engine.v1 import common_pb2, webhook_pb2
from workflow_engine_client import (
    AlreadyExists,
    EngineClient,
    EngineError,
    FailedPrecondition,
    RegistrationClient,
    Unauthenticated,
    WebhookVerificationError,
    session_status_name,
    verify_webhook,
    verify_webhook_ed25519,
)

DEFAULT_TARGET = "127.0.0.1:50051"
WEBHOOK_PATH = "/webhooks"


_output = threading.Lock()


def say(text: str) -> None:
    """Print one line; lines printed by the receiver's threads never interleave."""
    with _output:
        print(text, flush=True)


# -- webhook receiver -------------------------------------------------------------------------


class Receiver:
    """An HTTP server that verifies each webhook (HMAC and Ed25519) and keeps the verified events."""

    def __init__(self, host: str, port: int, secret: str, public_key: str) -> None:
        self.secret = secret
        self.public_key = public_key
        self.verified: list[webhook_pb2.WebhookEvent] = []
        self.rejected = 0
        self.closed = False
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status = receiver.handle(self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per webhook is printed by handle()

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{WEBHOOK_PATH}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop answering (webhooks still in flight are refused with 503, unprinted), then stop."""
        with self._changed:
            self.closed = True
        self._server.shutdown()
        self._server.server_close()

    def handle(self, path: str, headers: Any, body: bytes) -> int:
        if path != WEBHOOK_PATH:
            return 404
        if self.closed:
            return 503  # the engine delivers it again later
        try:
            event = verify_webhook(self.secret, headers, body)  # v1: HMAC with our secret
            verify_webhook_ed25519(self.public_key, headers, body)  # v1a: the engine's own key
        except WebhookVerificationError as error:
            with self._changed:
                if self.closed:
                    return 503
                say(f"REJECTED webhook {headers.get('webhook-id', '?')}: {error}")
                self.rejected += 1
                self._changed.notify_all()
            return 400
        with self._changed:
            if self.closed:
                return 503
            say(describe(event))
            self.verified.append(event)
            self._changed.notify_all()
        return 204

    def wait_for(self, done: Callable[[webhook_pb2.WebhookEvent], bool], timeout: float) -> bool:
        """Wait until a verified event satisfies `done`; False after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(done(event) for event in self.verified):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


def describe(event: webhook_pb2.WebhookEvent) -> str:
    """One line per webhook: type, ids and what happened."""
    line = (
        f"webhook verified  {event.type:<17} {event.id}  tenant={event.tenant_id} session={event.session_id}"
    )
    kind = event.WhichOneof("data")
    if kind == "message_received":
        message = event.message_received.message
        line += f"  from={getattr(message, 'from')} text={message.text!r}"
    elif kind == "message_status":
        message = event.message_status.message
        status = common_pb2.MessageStatus.Name(message.status).removeprefix("MESSAGE_STATUS_")
        line += f"  message={message.message_id} status={status} text={message.text!r}"
    elif kind == "session_status":
        previous = session_status_name(event.session_status.previous_status)
        line += f"  {previous} -> {session_status_name(event.session_status.session.status)}"
    elif kind == "test":
        line += f"  note={event.test.note!r}"
    return line


# -- credentials and state --------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (as `make run` writes var/dev.env); comments and blank lines skipped."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"agencies": {}}
    return state if isinstance(state, dict) and isinstance(state.get("agencies"), dict) else {"agencies": {}}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file readable by its owner only: it holds API keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(state, file, indent=2)
    temporary.replace(path)


def key_works(target: str, api_key: str) -> bool:
    with EngineClient(target, api_key) as client:
        try:
            next(client.list_sessions(page_size=1), None)
        except Unauthenticated:
            return False
    return True


def obtain_api_key(
    registry: RegistrationClient,
    target: str,
    agency_id: str,
    name: str,
    url: str,
    secret: str,
    state_file: Path,
) -> str:
    """The agency's API key: registered now, kept from an earlier run, or rotated with the PSK."""
    state = load_state(state_file)
    stored = state["agencies"].get(agency_id, {}).get("apiKey")
    if isinstance(stored, str) and key_works(target, stored):
        registry.update_config(agency_id, dashboard_url=url, webhook_secret=secret)
        say(f"agency {agency_id} already registered: kept its API key, moved it to {url} with a new secret")
        return stored
    try:
        api_key = registry.register(agency_id, name, url, secret).api_key
        say(f"registered agency {agency_id} -> {url}")
    except AlreadyExists:
        # Registered before, but its key is not in the state file: issue a new one with the PSK.
        api_key = registry.rotate_api_key(agency_id, grace_period_seconds=0).api_key
        registry.update_config(agency_id, dashboard_url=url, webhook_secret=secret)
        say(f"agency {agency_id} was registered without a stored key: rotated its API key, moved it to {url}")
    state["agencies"][agency_id] = {"apiKey": api_key}
    save_state(state_file, state)
    return api_key


# -- the session --------------------------------------------------------------------------------


def wait_until_working(client: EngineClient, session_id: str, timeout: float) -> common_pb2.Session:
    """Poll the session; show the pairing QR value once while it waits for a scan."""
    deadline = time.monotonic() + timeout
    shown_qr = False
    while True:
        session = client.get_session(session_id)
        if session.status == common_pb2.SESSION_STATUS_WORKING:
            return session
        if session.status == common_pb2.SESSION_STATUS_SCAN_QR_CODE and not shown_qr:
            try:
                value, png = client.get_session_qr(session_id)
            except FailedPrecondition:
                continue  # paired meanwhile
            say(f"scan this QR code to pair (the sandbox pairs by itself): {value} ({len(png)} byte PNG)")
            shown_qr = True
        if session.status == common_pb2.SESSION_STATUS_FAILED:
            raise RuntimeError(f"session {session_id} FAILED")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"session {session_id} is {session_status_name(session.status)} after {timeout} s"
            )
        time.sleep(0.2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--agency-id", default="reference-dashboard")
    parser.add_argument("--name", default="Reference Dashboard")
    parser.add_argument("--tenant-id", default="tenant-demo")
    parser.add_argument("--host", default="127.0.0.1", help="address the receiver listens on")
    parser.add_argument("--port", type=int, default=8787, help="receiver port (0: any free port)")
    parser.add_argument("--state-file", type=Path, default=Path("var/reference_dashboard.json"))
    parser.add_argument("--env-file", type=Path, default=Path("var/dev.env"))
    parser.add_argument(
        "--once", action="store_true", help="exit once the simulated message's webhook arrived"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait in --once mode")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target = os.environ.get("ENGINE_GRPC_TARGET") or DEFAULT_TARGET
    psk = os.environ.get("WORKFLOW_ENGINE_INTERNAL_PSK") or read_env_file(args.env_file).get(
        "WORKFLOW_ENGINE_INTERNAL_PSK", ""
    )
    if not psk:
        say(f"WORKFLOW_ENGINE_INTERNAL_PSK is not set (nor in {args.env_file}); run `make run` first")
        return 2

    # A fresh secret each run, in the Standard Webhooks form.
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with EngineClient(target, api_key="") as anonymous:
        public_key = anonymous.get_webhook_signing_key()  # public: no credential needed
    receiver = Receiver(args.host, args.port, secret, public_key)
    receiver.start()
    say(f"receiving webhooks on {receiver.url}; engine signing key {public_key}")

    session_id = ""
    client: EngineClient | None = None
    try:
        with RegistrationClient(target, psk) as registry:
            api_key = obtain_api_key(
                registry, target, args.agency_id, args.name, receiver.url, secret, args.state_file
            )
        client = EngineClient(target, api_key)
        session = client.create_session(args.tenant_id, name="Reference session", provider="sandbox")
        session_id = session.session_id
        say(f"created sandbox session {session_id} for tenant {args.tenant_id}")
        client.start_session(session_id)
        session = wait_until_working(client, session_id, args.timeout)
        say(f"session {session_id} is WORKING as {session.account_id}")

        sent = client.send_message(session_id, "+1 555 000 2222", "Hello from the reference dashboard")
        say(f"sent message {sent.message_id}")
        inbound = client.simulate_inbound_message(session_id, "15550002222", "Hi! Is this open today?")
        say(f"simulated inbound message {inbound.message_id}; waiting for its webhook")

        def is_inbound(event: webhook_pb2.WebhookEvent) -> bool:
            return (
                event.type == "message.received"
                and event.message_received.message.message_id == inbound.message_id
            )

        if args.once:
            arrived = receiver.wait_for(is_inbound, args.timeout)
            receiver.close()
            say(f"verified {len(receiver.verified)} webhooks ({receiver.rejected} rejected)")
            return 0 if arrived and receiver.rejected == 0 else 1
        say("Ctrl-C to stop")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        receiver.close()
        say(f"verified {len(receiver.verified)} webhooks ({receiver.rejected} rejected)")
        return 0
    finally:
        if client is not None:
            if session_id:
                try:
                    client.delete_session(session_id)
                except EngineError as error:
                    say(f"could not delete session {session_id}: {error}")
            client.close()
        if not receiver.closed:
            receiver.close()


if __name__ == "__main__":
    sys.exit(main())
