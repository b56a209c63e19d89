"""The channel, credentials and retry loop shared by both clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import message as protobuf_message

from workflow_engine_client.errors import REQUEST_ID_KEY, EngineError, error_from_rpc
from workflow_engine_client.retry import RetryConfig, RetryEvent

Metadata = tuple[tuple[str, str], ...]
Response = TypeVar("Response", bound=protobuf_message.Message)
Item = TypeVar("Item")

#: Seconds each attempt may take unless the client is given another timeout.
DEFAULT_TIMEOUT = 30.0


class _Page(Protocol):
    @property
    def next_page_token(self) -> str: ...


Page = TypeVar("Page", bound=_Page)


def new_request_id() -> str:
    """A request id for one logical call (the same on each of its retries)."""
    return "wfc_" + uuid.uuid4().hex


class Transport:
    """Calls unary RPCs on one channel with fixed credentials, mapping errors and retrying."""

    def __init__(
        self,
        target: str,
        credentials: Metadata,
        *,
        channel: Any | None,
        channel_credentials: Any | None,
        retry: RetryConfig,
        timeout: float | None,
    ) -> None:
        self.owns_channel = channel is None
        if channel is not None:
            self.channel = channel
        elif channel_credentials is not None:
            self.channel = grpc.secure_channel(target, channel_credentials)
        else:
            self.channel = grpc.insecure_channel(target)
        self.target = target
        self.credentials = credentials
        self.retry = retry
        self.timeout = timeout
        self._callables: dict[str, Any] = {}

    def close(self) -> None:
        """Close the channel if this transport opened it."""
        if self.owns_channel:
            self.channel.close()

    def _callable(self, method: str, response_type: type[protobuf_message.Message]) -> Any:
        found = self._callables.get(method)
        if found is None:
            found = self.channel.unary_unary(
                method,
                request_serializer=lambda request: request.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
            self._callables[method] = found
        return found

    def call(
        self,
        method: str,
        request: protobuf_message.Message,
        response_type: type[Response],
        *,
        idempotent: bool,
        public: bool = False,
    ) -> Response:
        """Call `method` (full name) with `request`; retry as configured; raise EngineError.

        A `public` method is called without credentials: the engine refuses a credential on
        an RPC that declares none (PERMISSION_DENIED), so none is sent.
        """
        stub = self._callable(method, response_type)
        request_id = new_request_id()
        credentials = () if public else self.credentials
        metadata = (*credentials, (REQUEST_ID_KEY, request_id))
        attempt = 1
        while True:
            try:
                response: Response = stub(request, metadata=metadata, timeout=self.timeout)
                return response
            except grpc.RpcError as raw:
                error = error_from_rpc(raw, request_id)
            delay = self.retry.delay_before_retry(error, attempt, idempotent)
            if delay is None:
                raise error
            if self.retry.on_retry is not None:
                self.retry.on_retry(RetryEvent(method, attempt, error, delay))
            self.retry.sleep(delay)
            attempt += 1


def paginate(fetch: Callable[[str], Page], items: Callable[[Page], Sequence[Item]]) -> Iterator[Item]:
    """Every item of a paginated listing, fetching each page only when the previous one is used up."""
    token = ""
    seen_tokens: set[str] = set()
    while True:
        page = fetch(token)
        yield from items(page)
        token = page.next_page_token
        if not token:
            return
        if token in seen_tokens:
            raise EngineError(grpc.StatusCode.INTERNAL, f"the engine returned page token {token!r} twice")
        seen_tokens.add(token)


def enum_value(enum: Any, value: int | str | None, prefix: str) -> int:
    """An enum number from a number, a full name (`SESSION_STATUS_WORKING`) or a short one (`WORKING`)."""
    if value is None:
        return 0
    if isinstance(value, str):
        name = value.upper()
        if not name.startswith(prefix):
            name = prefix + name
        try:
            return int(enum.Value(name))
        except ValueError:
            kind = prefix.rstrip("_").lower().replace("_", " ")
            raise ValueError(f"unknown {kind} {value!r}") from None
    return int(value)
