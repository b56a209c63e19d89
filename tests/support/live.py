"""A test engine's settings, and a started engine with a channel to it (the `start_engine` fixture's)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import grpc

from engine.app import Engine
from engine.config import SecretStr, Settings
from tests.support.constants import MASTER_KEY, PSK, SECRET_KEY


def base_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test engine on a free port with the test credentials."""
    settings = Settings(
        master_api_key=SecretStr(MASTER_KEY),
        internal_psk=SecretStr(PSK),
        secret_key=SecretStr(SECRET_KEY),
        database_url=database_url,
        grpc_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        rate_limit_rps=1000.0,
        rate_limit_burst=10_000,
        grpc_workers=8,
        # Sandbox sessions pair at once unless a test asks otherwise.
        sandbox_pairing_seconds=0.0,
        # Test dashboards listen on loopback; unreachable example URLs fail fast.
        allow_private_webhook_urls=True,
        webhook_timeout_seconds=2.0,
    )
    return replace(settings, **overrides)  # type: ignore[arg-type]


@dataclass
class LiveEngine:
    """A started engine and a channel to it."""

    engine: Engine
    channel: grpc.Channel
    backend: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.engine.grpc_port}"

    @property
    def base_url(self) -> str:
        """The REST gateway's URL (engines started with http=True)."""
        return f"http://127.0.0.1:{self.engine.http_port}"
