"""Who is calling: the identity established by the interceptor for the current RPC."""

from __future__ import annotations

import contextvars
import enum
from typing import NamedTuple


class CallerKind(enum.Enum):
    """Kind of credential the caller proved."""

    ANONYMOUS = "anonymous"
    PSK = "psk"
    DASHBOARD = "dashboard"
    MASTER = "master"
    PROVIDER = "provider"


class Identity(NamedTuple):
    """An authenticated caller. `agency_id` is set only for dashboard keys.

    A NamedTuple rather than a dataclass: one is built on every call, and tuples are cheap.
    """

    kind: CallerKind
    agency_id: str = ""
    key_id: str = ""
    #: Rate limit override stored with the dashboard's registration (None: default).
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None


ANONYMOUS = Identity(CallerKind.ANONYMOUS)

_current: contextvars.ContextVar[Identity] = contextvars.ContextVar("engine_identity", default=ANONYMOUS)


def current_identity() -> Identity:
    """The identity of the RPC being served on this thread."""
    return _current.get()


def bind_identity(identity: Identity) -> contextvars.Token[Identity]:
    """Make `identity` current; pass the token to `unbind_identity` when the call ends."""
    return _current.set(identity)


def unbind_identity(token: contextvars.Token[Identity]) -> None:
    """Restore the identity that was current before `bind_identity`."""
    _current.reset(token)
