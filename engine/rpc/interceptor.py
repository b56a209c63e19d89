"""The one enforcement point of every RPC: access rules, error mapping, access log.

Each handler is wrapped so that, before the servicer runs, the AccessGuard
authenticates the caller, scopes the request to its agency and takes a rate
limit token. Domain errors raised anywhere below become gRPC statuses with
google.rpc details here, and one JSON log line is written per call.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from engine.auth.guard import AccessGuard, CallCredentials
from engine.auth.identity import ANONYMOUS, Identity, bind_identity, unbind_identity
from engine.auth.policy import AccessRule, lookup
from engine.errors import EngineError, PermissionDenied
from engine.rpc.status import internal_error_status, rich_status

access_log = logging.getLogger("engine.access")
REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128


class AccessInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Applies the declared AccessRule of each method; refuses methods that declare none."""

    def __init__(self, guard: AccessGuard, policies: Mapping[str, AccessRule | None]) -> None:
        self._guard = guard
        self._policies = policies

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not handler.unary_unary:
            # Unknown methods answer UNIMPLEMENTED; streaming ones are only the open
            # infrastructure services (reflection), which take no credential.
            return handler if handler is None or lookup(self._policies, details.method) else _refused(handler)
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(details.method, lookup(self._policies, details.method), handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, method: str, rule: AccessRule | None, behavior: Callable[[Any, Any], Any]) -> Any:
        guard = self._guard

        def guarded(request: Any, context: Any) -> Any:
            started = time.perf_counter()
            metadata = dict(context.invocation_metadata())
            request_id = _request_id(metadata.get(REQUEST_ID_KEY))
            context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            identity: Identity = ANONYMOUS
            code = grpc.StatusCode.OK
            try:
                if rule is None:
                    raise PermissionDenied("this method declares no access policy", reason="NO_POLICY")
                identity = guard.admit(
                    rule,
                    CallCredentials(
                        authorization=metadata.get("authorization", ""),
                        api_key=metadata.get("x-api-key", ""),
                        peer=context.peer(),
                    ),
                    request,
                )
                token = bind_identity(identity)
                try:
                    return behavior(request, context)
                finally:
                    unbind_identity(token)
            except EngineError as error:
                code, message, trailers = rich_status(error)
                context.set_trailing_metadata(trailers)
                context.abort(code, message)
            except NotImplementedError:
                # Generated base servicers raise this for RPCs of later issues.
                code = grpc.StatusCode.UNIMPLEMENTED
                context.abort(code, f"{method} is not implemented yet")
            except Exception:
                if context.code() is not None:  # the servicer aborted on purpose
                    code = context.code()
                    raise
                code, message, trailers = internal_error_status(request_id)
                access_log.exception("unhandled error", extra={"method": method, "request_id": request_id})
                context.set_trailing_metadata(trailers)
                context.abort(code, message)
            finally:
                access_log.info(
                    "rpc",
                    extra={
                        "method": method,
                        "code": code.name,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "agency_id": identity.agency_id or getattr(request, "agency_id", ""),
                        "caller": identity.kind.value,
                        "request_id": request_id,
                    },
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


def _request_id(given: str | None) -> str:
    if given and len(given) <= _MAX_REQUEST_ID and given.isprintable():
        return given
    return "req_" + secrets.token_hex(8)
