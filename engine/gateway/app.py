"""The REST gateway as an ASGI application: HTTP/JSON in, gRPC to the engine, HTTP/JSON out.

Like grpc-gateway, it is a client of the gRPC server: every call passes the same
interceptor (authentication, agency scoping, rate limits). It adds only what HTTP
needs: routing, transcoding, header mapping and the status table.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import grpc

from engine.gateway import errors
from engine.gateway.routes import NoRoute, Route, Router
from engine.gateway.transcode import BadRequest, build_request, message_class, render_response
from engine.request_ids import new_request_id, request_id_from
from engine.rpc.metadata import FORWARDED_FOR_KEY, GATEWAY_TOKEN_KEY, HTTP_CODE_KEY, REQUEST_ID_KEY

log = logging.getLogger("engine.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: HTTP request headers forwarded as gRPC metadata under the same (lower-case) name.
FORWARDED_HEADERS = frozenset({"x-api-key", "authorization"})
METADATA_PREFIX = "grpc-metadata-"
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
#: Headers of every static response: the page may load only its own scripts, styles and images
#: (and data: images), talk only to this origin, and never be framed, sniffed or sent a referrer.
STATIC_HEADERS = (
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
)
#: A static file: body bytes and content type.
StaticFile = tuple[bytes, str]


class OpsEndpoints:
    """The gateway's own endpoints: health, readiness, metrics, the OpenAPI document."""

    def __init__(
        self,
        ready: Callable[[], Awaitable[bool]],
        metrics: Callable[[], tuple[bytes, str]] | None,
        openapi_json: bytes,
    ) -> None:
        self.ready = ready
        self.metrics = metrics
        self.openapi_json = openapi_json


class Gateway:
    """ASGI app transcoding HTTP requests onto the gRPC services of `routes`."""

    def __init__(
        self,
        upstream: str,
        routes: Sequence[Route],
        ops: OpsEndpoints,
        *,
        gateway_token: str,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        observe: Callable[[str, int, float], None] | None = None,
        forward_headers: Iterable[str] = (),
        static: Mapping[str, StaticFile] | None = None,
    ) -> None:
        """`static` maps exact URL paths to files served for GET and HEAD before any routing."""
        self._upstream = upstream
        #: HTTP headers sent on as metadata of the same (lower-case) name, e.g. provider signatures.
        self._forwarded = FORWARDED_HEADERS | {name.lower() for name in forward_headers}
        self._router = Router(routes)
        self._ops = ops
        self._gateway_token = gateway_token
        self._max_body_bytes = max_body_bytes
        #: Called with (route label, HTTP status, seconds) after every request.
        self._observe = observe
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}
        #: path -> (body, content type, strong ETag of the body).
        self._static = {
            path: (body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
            for path, (body, content_type) in (static or {}).items()
        }

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            started = time.perf_counter()
            statuses: list[int] = []

            async def tracking_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
                await send(message)

            route = "unrouted"
            try:
                route = await self._http(scope, receive, tracking_send)
            except Exception:
                # Never a stack trace in a response: log it, answer with a request id to find it by.
                request_id = new_request_id()
                log.exception("gateway error", extra={"request_id": request_id, "path": scope.get("path")})
                if not statuses:
                    message = f"internal error (request id {request_id})"
                    headers = [("x-request-id", request_id)]
                    await _send_error(tracking_send, 500, grpc.StatusCode.INTERNAL, message, headers)
            if self._observe is not None and statuses:
                self._observe(route, statuses[0], time.perf_counter() - started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._channel = grpc.aio.insecure_channel(
                    self._upstream, options=(("grpc.max_receive_message_length", 8 * 1024 * 1024),)
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._channel is not None:
                    await self._channel.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> str:
        """Serve one request; return the route label it counts under in the metrics."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = request_id_from(headers.get("x-request-id"))
        base_headers = [("x-request-id", request_id)]
        method = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        if path in _OPS_PATHS and method in ("GET", "HEAD"):
            await self._serve_ops(path, send, base_headers)
            return str(path)
        if path in self._static:
            await self._serve_static(path, method, headers.get("if-none-match"), send, base_headers)
            return str(path)
        try:
            match = self._router.match(method, path)
        except NoRoute as missing:
            if missing.allowed:
                allow = [("allow", ", ".join(missing.allowed))]
                await _send_error(
                    send, 405, grpc.StatusCode.UNIMPLEMENTED, "method not allowed", base_headers + allow
                )
            else:
                await _send_error(send, 404, grpc.StatusCode.NOT_FOUND, "no such path", base_headers)
            return "unrouted"
        label = f"{method} {match.route.template.text}"
        body = await _read_body(receive, self._max_body_bytes)
        if body is None:
            limit = f"request body is larger than {self._max_body_bytes} bytes"
            await _send_error(send, 413, grpc.StatusCode.INVALID_ARGUMENT, limit, base_headers)
            return label
        try:
            query = parse_qsl(scope.get("query_string", b"").decode("utf-8"), keep_blank_values=True)
            request = build_request(
                match.route, match.bindings, query, body, headers.get("content-type", "application/json")
            )
            timeout = _grpc_timeout(headers.get("grpc-timeout"))
        except (BadRequest, UnicodeDecodeError) as error:
            await _send_error(send, 400, grpc.StatusCode.INVALID_ARGUMENT, str(error), base_headers)
            return label
        try:
            metadata = self._metadata(headers, request_id, scope.get("client"))
        except BadRequest as error:
            await _send_error(send, 400, grpc.StatusCode.INVALID_ARGUMENT, str(error), base_headers)
            return label
        await self._forward(match.route, request, metadata, timeout, send, base_headers)
        return label

    # -- forwarding ----------------------------------------------------------------------------

    def _metadata(
        self, headers: dict[str, str], request_id: str, client: tuple[str, int] | None
    ) -> list[tuple[str, str]]:
        metadata = [(REQUEST_ID_KEY, request_id), (GATEWAY_TOKEN_KEY, self._gateway_token)]
        if client:
            host, port = client
            family = "ipv6" if ":" in host else "ipv4"
            shown = f"[{host}]" if family == "ipv6" else host
            metadata.append((FORWARDED_FOR_KEY, f"{family}:{shown}:{port}"))
        for name, value in headers.items():
            if name in self._forwarded:
                key = name
            elif name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
                key = name[len(METADATA_PREFIX) :]
                # A client may not pose as the gateway or pick the address its limits apply to.
                if key.startswith(("grpc-", GATEWAY_TOKEN_KEY, FORWARDED_FOR_KEY)):
                    continue
            else:
                continue
            if not _METADATA_KEY.fullmatch(key) or key.endswith("-bin"):
                raise BadRequest(f"header {name!r} cannot be sent as gRPC metadata")
            if not (len(value) <= MAX_METADATA_VALUE and usable_text(value)):
                raise BadRequest(f"header {name!r} must be printable ASCII")
            metadata.append((key, value))
        return metadata

    def _call(self, route: Route) -> Any:
        call = self._calls.get(route.grpc_path)
        if call is None:
            assert self._channel is not None, "lifespan startup has not run"
            call = self._channel.unary_unary(
                route.grpc_path,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=message_class(route.rpc.output_type).FromString,
            )
            self._calls[route.grpc_path] = call
        return call

    async def _forward(
        self,
        route: Route,
        request: Any,
        metadata: list[tuple[str, str]],
        timeout: float | None,
        send: Send,
        base_headers: list[tuple[str, str]],
    ) -> None:
        call = self._call(route)(request, metadata=metadata, timeout=timeout)
        try:
            response = await call
            initial = await call.initial_metadata()
        except grpc.aio.AioRpcError as error:
            status, extra, payload = errors.from_rpc_error(
                error.code(), error.details() or "", tuple(error.trailing_metadata() or ())
            )
            await _send(send, status, base_headers + extra, payload, errors.JSON_TYPE)
            return
        body, content_type = render_response(route, response)
        status = 200
        headers = list(base_headers)
        for key, value in initial or ():
            if key == HTTP_CODE_KEY:
                status = _success_status(value)
            elif isinstance(value, str):
                headers.append((f"grpc-metadata-{key}", value))
        await _send(send, status, headers, body, content_type)

    async def _serve_static(
        self,
        path: str,
        method: str,
        if_none_match: str | None,
        send: Send,
        base_headers: list[tuple[str, str]],
    ) -> None:
        body, content_type, etag = self._static[path]
        headers = [*base_headers, *STATIC_HEADERS]
        if method not in ("GET", "HEAD"):
            allow = [("allow", "GET, HEAD")]
            await _send_error(send, 405, grpc.StatusCode.UNIMPLEMENTED, "method not allowed", headers + allow)
            return
        headers.append(("etag", etag))
        if if_none_match is not None and etag in (tag.strip() for tag in if_none_match.split(",")):
            await send({"type": "http.response.start", "status": 304, "headers": _raw_headers(headers)})
            await send({"type": "http.response.body", "body": b""})
            return
        raw_headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
            *_raw_headers(headers),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _serve_ops(self, path: str, send: Send, headers: list[tuple[str, str]]) -> None:
        if path == "/healthz":
            await _send(send, 200, headers, b'{"status":"ok"}', errors.JSON_TYPE)
        elif path == "/readyz":
            ready = await self._ops.ready()
            body = b'{"status":"ready"}' if ready else b'{"status":"not ready"}'
            await _send(send, 200 if ready else 503, headers, body, errors.JSON_TYPE)
        elif path == "/metrics" and self._ops.metrics is not None:
            payload, content_type = self._ops.metrics()
            await _send(send, 200, headers, payload, content_type)
        elif path == "/openapi.json":
            await _send(send, 200, headers, self._ops.openapi_json, errors.JSON_TYPE)
        else:
            await _send_error(send, 404, grpc.StatusCode.NOT_FOUND, "no such path", headers)


def _success_status(value: str | bytes) -> int:
    """The HTTP status a servicer asked for with `x-http-code`: a 2xx that has a body, else 200."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return int(text) if text.isdigit() and 200 <= int(text) <= 299 and int(text) not in (204, 205) else 200


_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")


MAX_METADATA_VALUE = 8192


def usable_text(value: str) -> bool:
    """Printable ASCII: what gRPC accepts in a text metadata value."""
    return value.isascii() and value.isprintable()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _grpc_timeout(value: str | None) -> float | None:
    """Seconds from a `Grpc-Timeout` header (`100m`, `5S`, ...), None when absent."""
    if not value:
        return None
    amount, unit = value[:-1], value[-1:]
    if not amount.isdigit() or len(amount) > 8 or unit not in _TIMEOUT_UNITS:
        raise BadRequest(f"Grpc-Timeout {value!r} is not a gRPC timeout such as 500m or 10S")
    return int(amount) * _TIMEOUT_UNITS[unit]


async def _send(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes, content_type: str
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += _raw_headers(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def _send_error(
    send: Send, status: int, code: grpc.StatusCode, message: str, headers: list[tuple[str, str]]
) -> None:
    await _send(send, status, headers, errors.error_body(code, message), errors.JSON_TYPE)
