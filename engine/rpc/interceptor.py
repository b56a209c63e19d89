"""The one enforcement point of every RPC: access rules, error mapping, access log.

Each handler is wrapped so that, before the servicer runs, the AccessGuard
authenticates the caller, scopes the request to its agency and takes a rate
limit token. Domain errors raised anywhere below become gRPC statuses with
google.rpc details here, and one JSON log line is written per call. A failed
call carries its request id in the `x-request-id` trailer, so a caller can quote
it when asking what went wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from engine.auth.credentials import secrets_equal
from engine.auth.guard import AccessGuard, CallCredentials
from engine.auth.identity import ANONYMOUS, Identity
from engine.auth.policy import AccessRule, lookup
from engine.errors import EngineError, PermissionDenied
from engine.logs import log_access
from engine.metrics import EngineMetrics
from engine.request_ids import request_id_from
from engine.rpc.metadata import FORWARDED_FOR_KEY, GATEWAY_TOKEN_KEY, REQUEST_ID_KEY
from engine.rpc.status import internal_error_status, rich_status

access_log = logging.getLogger("engine.access")


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Applies the declared AccessRule of each method; refuses methods that declare none."""

    def __init__(
        self,
        guard: AccessGuard,
        policies: Mapping[str, AccessRule | None],
        metrics: EngineMetrics,
        gateway_token: str,
    ) -> None:
        self._guard = guard
        self._policies = policies
        self._metrics = metrics
        self._gateway_token = gateway_token
        # grpcio asks the interceptor on every call; the guarded handler of a method never changes.
        self._handlers: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method = details.method
        guarded = self._handlers.get(method)
        if guarded is not None:
            return guarded
        handler = continuation(details)
        if handler is None:
            return None  # unknown method: grpcio answers UNIMPLEMENTED
        if handler.unary_unary:
            guarded = grpc.unary_unary_rpc_method_handler(
                self._wrap(method, lookup(self._policies, method), handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:
            # Streaming methods are only the open infrastructure services (reflection),
            # which take no credential; any other streaming method is refused.
            guarded = handler if lookup(self._policies, method) else _refused(handler)
        self._handlers[method] = guarded
        return guarded

    def _wrap(self, method: str, rule: AccessRule | None, behavior: Callable[[Any, Any], Any]) -> Any:
        guard = self._guard
        metrics = self._metrics
        gateway_token = self._gateway_token

        def guarded(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            authorization = api_key = given_request_id = presented_token = forwarded_for = ""
            for key, value in context.invocation_metadata():
                if key == "authorization":
                    authorization = value
                elif key == "x-api-key":
                    api_key = value
                elif key == REQUEST_ID_KEY:
                    given_request_id = value
                elif key == GATEWAY_TOKEN_KEY:
                    presented_token = value
                elif key == FORWARDED_FOR_KEY:
                    forwarded_for = value
            via_gateway = bool(presented_token) and secrets_equal(presented_token, gateway_token)
            transport = "rest" if via_gateway else "grpc"
            # Behind the gateway, per-peer limits apply to the HTTP client, not to the gateway.
            peer: Any = forwarded_for if via_gateway and forwarded_for else context.peer
            request_id = request_id_from(given_request_id)
            identity: Identity = ANONYMOUS
            code = grpc.StatusCode.OK
            try:
                if rule is None:
                    raise PermissionDenied("this method declares no access policy", reason="NO_POLICY")
                identity = guard.admit(
                    rule,
                    CallCredentials(authorization, api_key, peer, context.invocation_metadata),
                    request,
                )
                response = behavior(request, context)
                # Successful calls carry no request id back: trailing metadata costs about 10% of
                # a call's CPU, and a caller that wants to correlate sends its own x-request-id.
                return response
            except EngineError as error:
                code, message, trailers = rich_status(error)
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *trailers))
                context.abort(code, message)
            except NotImplementedError:
                # Generated base servicers raise this for an RPC declared in the contract and not
                # implemented by its servicer.
                code = grpc.StatusCode.UNIMPLEMENTED
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
                context.abort(code, f"{method} is not implemented yet")
            except Exception:
                if context.code() is not None:  # the servicer aborted on purpose
                    code = context.code()
                    raise
                code, message, trailers = internal_error_status(request_id)
                access_log.exception("unhandled error", extra={"method": method, "request_id": request_id})
                context.set_trailing_metadata(((REQUEST_ID_KEY, request_id), *trailers))
                context.abort(code, message)
            finally:
                elapsed = time.perf_counter() - started
                metrics.observe_rpc(method, code.name, transport, elapsed)
                log_access(
                    {
                        "method": method,
                        "code": code.name,
                        "duration_ms": round(elapsed * 1000, 3),
                        "agency_id": identity.agency_id or getattr(request, "agency_id", ""),
                        "caller": identity.kind.value,
                        "request_id": request_id,
                        "transport": transport,
                    }
                )

        return guarded


def _refused(handler: Any) -> Any:
    """A handler for a streaming method with no policy: always PERMISSION_DENIED."""

    def refuse(_request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "this method declares no access policy")

    factory = (
        grpc.stream_stream_rpc_method_handler
        if handler.stream_stream
        else grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_unary_rpc_method_handler
    )
    return factory(refuse, handler.request_deserializer, handler.response_serializer)
