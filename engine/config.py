"""Settings: every knob of the engine, read once from the environment.

Each field documents its environment variable. Secrets are held as
`SecretStr` so that printing or logging a Settings object never shows them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

MIN_SECRET_KEY_LENGTH = 32
#: Where the processes of one `engine serve` keep their metrics (prometheus-client's multiprocess
#: mode; the library reads it when first imported).
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

Number = TypeVar("Number", int, float)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable, never its value."""


class SecretStr:
    """A string that hides itself from repr/str so secrets never reach logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret itself; call only where it is used."""
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_database_url() -> str:
    """The embedded default: a SQLite file under ./var/."""
    return f"sqlite:///{Path('var') / 'engine.db'}"


@dataclass(frozen=True)
class Settings:
    """Engine configuration. Build it with `Settings.from_env()`."""

    #: ENGINE_API_KEY — master key of the engine admins (required to serve).
    master_api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: WORKFLOW_ENGINE_INTERNAL_PSK — pre-shared key of the internal/registration routes (required).
    internal_psk: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: ENGINE_SECRET_KEY — at least 32 characters; encrypts webhook secrets at rest (required).
    secret_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: ENGINE_DATABASE_URL — SQLAlchemy URL; default a SQLite file var/engine.db.
    database_url: str = field(default_factory=default_database_url)
    #: ENGINE_GRPC_ADDR — host:port of the gRPC server.
    grpc_addr: str = "127.0.0.1:50051"
    #: ENGINE_HTTP_ADDR — host:port of the REST gateway.
    http_addr: str = "127.0.0.1:8080"
    #: ENGINE_CHILD_PROCESSES — `engine serve` runs the REST gateway and the webhook dispatcher as
    #: child processes (each on a core of its own: one process has one GIL); false: on threads.
    child_processes: bool = True
    #: ENGINE_HTTP_MAX_BODY_BYTES — larger REST request bodies are refused with 413.
    http_max_body_bytes: int = 1024 * 1024
    #: ENGINE_RATE_LIMIT_RPS — default sustained requests per second per credential.
    rate_limit_rps: float = 50.0
    #: ENGINE_RATE_LIMIT_BURST — default bucket size per credential.
    rate_limit_burst: int = 100
    #: ENGINE_GRPC_WORKERS — threads serving gRPC calls.
    grpc_workers: int = 16
    #: ENGINE_AUTO_MIGRATE — apply migrations at start-up (default on).
    auto_migrate: bool = True
    #: ENGINE_LOG_LEVEL — DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    #: ENGINE_DEFAULT_PROVIDER — provider of sessions created without one: sandbox or waha.
    default_provider: str = "sandbox"
    #: ENGINE_PUBLIC_URL — base URL at which providers reach this engine's REST gateway
    #: (their webhooks go to {ENGINE_PUBLIC_URL}/v1/webhooks/{provider}); default http://ENGINE_HTTP_ADDR.
    public_url: str = ""
    #: ENGINE_SANDBOX_PAIRING_SECONDS — how long a sandbox session shows its QR code before it pairs.
    sandbox_pairing_seconds: float = 3.0
    #: ENGINE_WAHA_URL — base URL of the WAHA server (the waha provider is available when set).
    waha_url: str = ""
    #: ENGINE_WAHA_API_KEY — sent to WAHA as X-Api-Key.
    waha_api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: ENGINE_WAHA_WEBHOOK_SECRET — HMAC key WAHA signs its webhooks with (required with ENGINE_WAHA_URL).
    waha_webhook_secret: SecretStr = field(default_factory=lambda: SecretStr(""))
    #: ENGINE_DISPATCHER — whether `engine serve` also delivers webhooks (`engine worker` only delivers).
    run_dispatcher: bool = True
    #: ENGINE_WEBHOOK_TIMEOUT_SECONDS — a delivery succeeds on a 2xx answer within this time.
    webhook_timeout_seconds: float = 15.0
    #: ENGINE_WEBHOOK_RETRY_SCHEDULE — seconds before each retry (comma-separated; Svix's by default).
    webhook_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    #: ENGINE_WEBHOOK_DISABLE_AFTER_HOURS — a dashboard whose deliveries all fail this long is disabled.
    webhook_disable_after_hours: float = 120.0
    #: ENGINE_WEBHOOK_CONCURRENCY — deliveries in flight at once, in total.
    webhook_concurrency: int = 32
    #: ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD — deliveries in flight at once to one dashboard.
    webhook_concurrency_per_dashboard: int = 16
    #: ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS — allow dashboard URLs on loopback/private addresses
    #: (off by default: a dashboard URL must not reach the engine's own network).
    allow_private_webhook_urls: bool = False

    REQUIRED_TO_SERVE = ("ENGINE_API_KEY", "WORKFLOW_ENGINE_INTERNAL_PSK", "ENGINE_SECRET_KEY")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default os.environ); raise ConfigError naming a bad variable."""
        env = os.environ if env is None else env
        return cls(
            master_api_key=SecretStr(env.get("ENGINE_API_KEY", "")),
            internal_psk=SecretStr(env.get("WORKFLOW_ENGINE_INTERNAL_PSK", "")),
            secret_key=SecretStr(env.get("ENGINE_SECRET_KEY", "")),
            database_url=env.get("ENGINE_DATABASE_URL") or default_database_url(),
            grpc_addr=_address(env, "ENGINE_GRPC_ADDR", cls.grpc_addr),
            http_addr=_address(env, "ENGINE_HTTP_ADDR", cls.http_addr),
            child_processes=_flag(env, "ENGINE_CHILD_PROCESSES", cls.child_processes),
            http_max_body_bytes=_number(
                env, "ENGINE_HTTP_MAX_BODY_BYTES", cls.http_max_body_bytes, int, minimum=1
            ),
            rate_limit_rps=_number(env, "ENGINE_RATE_LIMIT_RPS", cls.rate_limit_rps, float, minimum=0.001),
            rate_limit_burst=_number(env, "ENGINE_RATE_LIMIT_BURST", cls.rate_limit_burst, int, minimum=1),
            grpc_workers=_number(env, "ENGINE_GRPC_WORKERS", cls.grpc_workers, int, minimum=1),
            auto_migrate=_flag(env, "ENGINE_AUTO_MIGRATE", cls.auto_migrate),
            log_level=_choice(env, "ENGINE_LOG_LEVEL", cls.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            default_provider=_choice(
                env, "ENGINE_DEFAULT_PROVIDER", cls.default_provider, ("SANDBOX", "WAHA")
            ).lower(),
            public_url=_base_url(env, "ENGINE_PUBLIC_URL"),
            sandbox_pairing_seconds=_number(
                env, "ENGINE_SANDBOX_PAIRING_SECONDS", cls.sandbox_pairing_seconds, float, minimum=0.0
            ),
            waha_url=_base_url(env, "ENGINE_WAHA_URL"),
            waha_api_key=SecretStr(env.get("ENGINE_WAHA_API_KEY", "")),
            waha_webhook_secret=SecretStr(env.get("ENGINE_WAHA_WEBHOOK_SECRET", "")),
            run_dispatcher=_flag(env, "ENGINE_DISPATCHER", cls.run_dispatcher),
            webhook_timeout_seconds=_number(
                env, "ENGINE_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds, float, minimum=0.1
            ),
            webhook_retry_schedule=_schedule(
                env, "ENGINE_WEBHOOK_RETRY_SCHEDULE", cls.webhook_retry_schedule
            ),
            webhook_disable_after_hours=_number(
                env, "ENGINE_WEBHOOK_DISABLE_AFTER_HOURS", cls.webhook_disable_after_hours, float, minimum=0.0
            ),
            webhook_concurrency=_number(
                env, "ENGINE_WEBHOOK_CONCURRENCY", cls.webhook_concurrency, int, minimum=1
            ),
            webhook_concurrency_per_dashboard=_number(
                env,
                "ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD",
                cls.webhook_concurrency_per_dashboard,
                int,
                minimum=1,
            ),
            allow_private_webhook_urls=_flag(
                env, "ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS", cls.allow_private_webhook_urls
            ),
        )

    def ingress_base_url(self, http_port: int | None = None) -> str:
        """The base URL providers post their webhooks to (ENGINE_PUBLIC_URL or the gateway's address)."""
        if self.public_url:
            return self.public_url
        host, _, port = self.http_addr.rpartition(":")
        if host in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 (a wildcard, not a bind)
            host = "127.0.0.1"
        return f"http://{host}:{http_port if http_port is not None else port}"

    def require_serving_secrets(self) -> None:
        """Raise ConfigError for the first missing or too-short secret needed to serve."""
        for name, value in zip(
            self.REQUIRED_TO_SERVE, (self.master_api_key, self.internal_psk, self.secret_key), strict=True
        ):
            if not value:
                raise ConfigError(f"{name} is required but not set")
        if len(self.secret_key.get()) < MIN_SECRET_KEY_LENGTH:
            raise ConfigError(f"ENGINE_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters")
        if self.waha_url and not self.waha_webhook_secret:
            raise ConfigError("ENGINE_WAHA_WEBHOOK_SECRET is required when ENGINE_WAHA_URL is set")
        if self.default_provider == "waha" and not self.waha_url:
            raise ConfigError("ENGINE_DEFAULT_PROVIDER is waha but ENGINE_WAHA_URL is not set")


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    host, sep, port = value.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name} must be HOST:PORT")
    return value


def _base_url(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "").rstrip("/")
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"{name} must be an http or https URL")
    return value


def _schedule(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, e.g. 5,300,1800") from None
    if not all(math.isfinite(d) and d >= 0 for d in delays):
        raise ConfigError(f"{name} must list finite, non-negative seconds")
    return delays


def _number(
    env: Mapping[str, str], name: str, default: Number, kind: type[Number], minimum: Number
) -> Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number of at least {minimum}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).upper()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}")
    return value
