"""Typed Python client of the Workflow Engine.

- `RegistrationClient`: register a dashboard and manage its configuration (PSK).
- `EngineClient`: sessions, messages, conversations and webhook deliveries (API key).
- `verify_webhook` / `verify_webhook_ed25519`: check a delivery's signature, get its event.

Methods return the generated proto messages of `workflow_engine.v1`; failures raise
`EngineError` subclasses; rate limits and unavailability are retried per `RetryConfig`.
"""

from workflow_engine_client.engine import EngineClient, SessionQr, session_status_name
from workflow_engine_client.errors import (
    AlreadyExists,
    EngineError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from workflow_engine_client.registration import Registration, RegistrationClient
from workflow_engine_client.retry import NO_RETRY, RetryConfig, RetryEvent
from workflow_engine_client.webhooks import (
    WebhookVerificationError,
    hmac_key,
    parse_event,
    verify_signature,
    verify_signature_ed25519,
    verify_webhook,
    verify_webhook_ed25519,
)

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "AlreadyExists",
    "EngineClient",
    "EngineError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "Registration",
    "RegistrationClient",
    "RetryConfig",
    "RetryEvent",
    "SessionQr",
    "Unauthenticated",
    "Unavailable",
    "WebhookVerificationError",
    "__version__",
    "hmac_key",
    "parse_event",
    "session_status_name",
    "verify_signature",
    "verify_signature_ed25519",
    "verify_webhook",
    "verify_webhook_ed25519",
]
