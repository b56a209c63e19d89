"""Who is calling: the identity the access guard establishes for each RPC."""

from __future__ import annotations

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
