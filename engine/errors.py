"""Domain errors. Services raise these; the interceptor turns them into gRPC statuses.

Messages are shown to callers: they must never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, named as in the JSON API (lowerCamelCase)."""

    field: str
    description: str


@dataclass
class EngineError(Exception):
    """Base of every error a caller may see."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidArgument(EngineError):
    """The request is malformed; `violations` names each bad field."""

    violations: list[FieldViolation] = field(default_factory=list)


@dataclass
class Unauthenticated(EngineError):
    """No valid credential. Never says which part was wrong."""


@dataclass
class PermissionDenied(EngineError):
    """A valid credential that may not do this."""

    reason: str = ""


@dataclass
class NotFound(EngineError):
    """No such resource (or not one the caller may know about)."""


@dataclass
class AlreadyExists(EngineError):
    """The resource to create exists already."""


@dataclass
class FailedPrecondition(EngineError):
    """The resource is not in a state that allows the operation."""


@dataclass
class Unavailable(EngineError):
    """A dependency (a messaging provider) could not do its part; retrying later may work."""


@dataclass
class ResourceExhausted(EngineError):
    """A rate limit was hit; retry after `retry_after_seconds`."""

    retry_after_seconds: int = 1
    limit: int = 0
    window_seconds: float = 1.0


def invalid(field_name: str, description: str) -> InvalidArgument:
    """Shortcut for an InvalidArgument about a single field."""
    return InvalidArgument(f"{field_name}: {description}", [FieldViolation(field_name, description)])
