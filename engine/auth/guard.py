"""The access rules of every call: authenticate, scope to an agency, rate-limit.

This module knows nothing about gRPC; the interceptor feeds it the call's
metadata and request and turns its errors into statuses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from google.protobuf.message import Message

from engine.auth.credentials import looks_like_api_key, secrets_equal
from engine.auth.identity import ANONYMOUS, CallerKind, Identity
from engine.auth.policy import AccessRule
from engine.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from engine.ratelimit import Decision, RateLimiter
from workflow_engine.v1 import options_pb2

_KIND_CREDENTIAL = {
    CallerKind.ANONYMOUS: options_pb2.CREDENTIAL_NONE,
    CallerKind.PSK: options_pb2.CREDENTIAL_PSK,
    CallerKind.DASHBOARD: options_pb2.CREDENTIAL_DASHBOARD_KEY,
    CallerKind.MASTER: options_pb2.CREDENTIAL_MASTER_KEY,
    CallerKind.PROVIDER: options_pb2.CREDENTIAL_PROVIDER_SIGNATURE,
}

UNAUTHENTICATED_MESSAGE = "missing or invalid credentials"


class ResolvedKey(NamedTuple):
    """A dashboard API key found in the registry."""

    identity: Identity
    suspended: bool


class CallCredentials(NamedTuple):
    """What the caller presented, taken from the call's metadata."""

    authorization: str = ""
    api_key: str = ""
    #: The caller's address, or a function giving it (asked only when a limit is per peer).
    peer: str | Callable[[], str] = ""
    #: Every metadata entry of the call (asked only to check a provider's signature headers).
    metadata: Callable[[], Sequence[tuple[str, str | bytes]]] = tuple

    def peer_address(self) -> str:
        """The caller's address, e.g. `ipv4:127.0.0.1:5555`."""
        return self.peer() if callable(self.peer) else self.peer


#: Looks up a dashboard API key (plaintext) and returns what it proves, or None.
KeyResolver = Callable[[str], "ResolvedKey | None"]
#: Checks a provider's signature on a raw ingress request.
ProviderVerifier = Callable[[Message, CallCredentials], bool]


@dataclass
class GuardCounters:
    """Counters read by the admin health report, and passed on to `listener` (the metrics)."""

    auth_failures: int = 0
    rate_limit_rejections: int = 0
    listener: GuardListener | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_auth_failure(self) -> None:
        with self._lock:
            self.auth_failures += 1
        if self.listener is not None:
            self.listener.count_auth_failure()

    def count_rejection(self) -> None:
        with self._lock:
            self.rate_limit_rejections += 1
        if self.listener is not None:
            self.listener.count_rejection()


class GuardListener(Protocol):
    """Told of every refused call (the Prometheus counters)."""

    def count_auth_failure(self) -> None:
        """One call refused for missing or invalid credentials."""

    def count_rejection(self) -> None:
        """One call refused by a rate limit."""


class AccessGuard:
    """Decides whether one call may proceed, and as whom."""

    def __init__(
        self,
        *,
        psk: str,
        master_key: str,
        resolve_key: KeyResolver,
        limiter: RateLimiter,
        failed_auth_limiter: RateLimiter,
        verify_provider: ProviderVerifier | None = None,
    ) -> None:
        self._psk = psk
        self._master_key = master_key
        self._resolve_key = resolve_key
        self._limiter = limiter
        self._failed_auth = failed_auth_limiter
        self._verify_provider = verify_provider
        self.counters = GuardCounters()

    def admit(self, rule: AccessRule, credentials: CallCredentials, request: Message) -> Identity:
        """Return the caller's identity, or raise Unauthenticated / PermissionDenied / ResourceExhausted.

        May fill the rule's agency field with the caller's own agency when it is empty.
        """
        resolved = self._live_dashboard_key(credentials.api_key)
        if resolved is not None:
            # A dashboard key has ~238 random bits: there is nothing to guess, so the
            # failed-attempt check (and the peer lookup it needs) is skipped on this hot path.
            identity, suspended = resolved
        else:
            throttled = self._failed_auth.peek_exhausted(_peer_key(credentials.peer_address()))
            if throttled is not None:
                self._reject(throttled)
            identity, suspended = self._authenticate(rule, credentials, request)
        # A public method (one that accepts no credential) accepts any valid one as well.
        public = rule.allows(options_pb2.CREDENTIAL_NONE)
        if not public and not rule.allows(_KIND_CREDENTIAL[identity.kind]):
            raise PermissionDenied(
                "this credential may not call this method", reason="CREDENTIAL_NOT_ALLOWED"
            )
        if suspended:
            raise PermissionDenied("the dashboard is suspended", reason="DASHBOARD_SUSPENDED")
        if rule.agency_field and identity.kind is CallerKind.DASHBOARD:
            _scope_to_agency(request, rule.agency_field, identity.agency_id)
        self._take_token(identity, credentials)
        return identity

    def _live_dashboard_key(self, api_key: str) -> ResolvedKey | None:
        if not looks_like_api_key(api_key):
            return None
        return self._resolve_key(api_key)

    def _authenticate(
        self, rule: AccessRule, credentials: CallCredentials, request: Message
    ) -> tuple[Identity, bool]:
        scheme, _, token = credentials.authorization.partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme == "psk" and secrets_equal(token, self._psk):
            return Identity(CallerKind.PSK), False
        if scheme == "bearer" and secrets_equal(token, self._master_key):
            return Identity(CallerKind.MASTER), False
        if credentials.api_key and secrets_equal(credentials.api_key, self._master_key):
            return Identity(CallerKind.MASTER), False
        presented_anything = bool(credentials.authorization or credentials.api_key)
        if rule.allows(options_pb2.CREDENTIAL_PROVIDER_SIGNATURE) and self._verify_provider is not None:
            if self._verify_provider(request, credentials):
                return Identity(CallerKind.PROVIDER), False
            presented_anything = True
        if rule.allows(options_pb2.CREDENTIAL_NONE) and not presented_anything:
            return ANONYMOUS, False
        self._failed_auth.take(_peer_key(credentials.peer_address()))
        self.counters.count_auth_failure()
        raise Unauthenticated(UNAUTHENTICATED_MESSAGE)

    def _take_token(self, identity: Identity, credentials: CallCredentials) -> None:
        if identity.kind is CallerKind.DASHBOARD:
            decision = self._limiter.take(
                f"key:{identity.key_id}", identity.rate_limit_rps, identity.rate_limit_burst
            )
        elif identity.kind is CallerKind.MASTER:
            decision = self._limiter.take("master")
        elif identity.kind is CallerKind.PROVIDER:
            # Provider events must not be dropped: they are signed and the provider retries anyway.
            return
        else:
            decision = self._limiter.take(f"{identity.kind.value}:{_peer_key(credentials.peer_address())}")
        if not decision.allowed:
            self._reject(decision)

    def _reject(self, decision: Decision) -> None:
        self.counters.count_rejection()
        raise ResourceExhausted(
            "rate limit exceeded; retry later",
            retry_after_seconds=decision.retry_after_seconds,
            limit=decision.burst,
            window_seconds=decision.burst / decision.rate,
        )


def _peer_key(peer: str) -> str:
    # "ipv4:127.0.0.1:5555" → "ipv4:127.0.0.1": throttle the host, not one connection.
    host, sep, _port = peer.rpartition(":")
    return "peer:" + (host if sep else peer)


def _scope_to_agency(request: Message, field_path: str, agency_id: str) -> None:
    """Fill an empty agency field with `agency_id`; refuse any other agency."""
    *parents, leaf = field_path.split(".")
    target = request
    for name in parents:
        target = getattr(target, name)
    requested = getattr(target, leaf)
    if not requested:
        setattr(target, leaf, agency_id)
    elif requested != agency_id:
        raise PermissionDenied("this API key may only act for its own agency", reason="AGENCY_MISMATCH")
