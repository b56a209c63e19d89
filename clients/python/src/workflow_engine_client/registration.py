"""RegistrationClient: the RegistryService with the pre-shared key (PSK)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from workflow_engine.v1 import registry_pb2
from workflow_engine_client._transport import DEFAULT_TIMEOUT, Transport, paginate
from workflow_engine_client.retry import RetryConfig

_SERVICE = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"]


def _path(name: str) -> str:
    return f"/{_SERVICE.full_name}/{_SERVICE.methods_by_name[name].name}"


@dataclass(frozen=True)
class Registration:
    """A new dashboard's credentials. The API key is shown only this once: store it."""

    api_key: str
    agency_id: str

    def __repr__(self) -> str:
        return f"Registration(api_key='{self.api_key[:8]}...', agency_id={self.agency_id!r})"


class RegistrationClient:
    """Registers dashboards and manages their configuration with the engine's PSK
    (`WORKFLOW_ENGINE_INTERNAL_PSK`), sent as `authorization: PSK <psk>`.

    `target` is the engine's gRPC address (`127.0.0.1:50051`). Pass `channel` to use a
    channel of your own (it is then not closed by `close()`), or `channel_credentials`
    (`grpc.ssl_channel_credentials()`) for TLS. `timeout` bounds each attempt, in seconds.
    """

    def __init__(
        self,
        target: str,
        psk: str,
        *,
        channel: Any | None = None,
        channel_credentials: Any | None = None,
        retry: RetryConfig | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._transport = Transport(
            target,
            (("authorization", f"PSK {psk}"),),
            channel=channel,
            channel_credentials=channel_credentials,
            retry=retry or RetryConfig(),
            timeout=timeout,
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RegistrationClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def register(
        self, agency_id: str, dashboard_name: str, dashboard_url: str, webhook_secret: str
    ) -> Registration:
        """RegisterDashboard: a new dashboard for `agency_id`; raises AlreadyExists if registered."""
        response = self._transport.call(
            _path("RegisterDashboard"),
            registry_pb2.RegisterDashboardRequest(
                agency_id=agency_id,
                dashboard_name=dashboard_name,
                dashboard_url=dashboard_url,
                webhook_secret=webhook_secret,
            ),
            registry_pb2.RegisterDashboardResponse,
            idempotent=False,
        )
        return Registration(api_key=response.api_key, agency_id=response.agency_id)

    def get_config(self, agency_id: str) -> registry_pb2.DashboardConfig:
        """GetDashboardConfig: the dashboard's configuration (never its webhook secret)."""
        response = self._transport.call(
            _path("GetDashboardConfig"),
            registry_pb2.GetDashboardConfigRequest(agency_id=agency_id),
            registry_pb2.GetDashboardConfigResponse,
            idempotent=True,
        )
        return response.config

    def update_config(
        self,
        agency_id: str,
        *,
        dashboard_name: str | None = None,
        dashboard_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> registry_pb2.DashboardConfig:
        """UpdateDashboardConfig: change only the fields given (None leaves a field as it is).

        After a new `webhook_secret`, deliveries carry signatures under the old and the new
        secret for a while, so receivers can switch without losing a webhook.
        """
        request = registry_pb2.UpdateDashboardConfigRequest(agency_id=agency_id)
        if dashboard_name is not None:
            request.dashboard_name = dashboard_name
        if dashboard_url is not None:
            request.dashboard_url = dashboard_url
        if webhook_secret is not None:
            request.webhook_secret = webhook_secret
        response = self._transport.call(
            _path("UpdateDashboardConfig"),
            request,
            registry_pb2.UpdateDashboardConfigResponse,
            idempotent=True,
        )
        return response.config

    def list_agencies(self, *, page_size: int | None = None) -> Iterator[registry_pb2.Agency]:
        """ListAgencies: every registered agency, fetching one page (of `page_size`) at a time."""

        def fetch(token: str) -> registry_pb2.ListAgenciesResponse:
            return self._transport.call(
                _path("ListAgencies"),
                registry_pb2.ListAgenciesRequest(page_size=page_size or 0, page_token=token),
                registry_pb2.ListAgenciesResponse,
                idempotent=True,
            )

        return paginate(fetch, lambda page: page.agencies)

    def rotate_api_key(
        self, agency_id: str, grace_period_seconds: int | None = None
    ) -> registry_pb2.RotateApiKeyResponse:
        """RotateApiKey: a new API key for `agency_id` (in the response, shown only this once).

        The previous key keeps working for `grace_period_seconds` (the engine's default,
        86400 s, when None; 0 revokes it at once).
        """
        request = registry_pb2.RotateApiKeyRequest(agency_id=agency_id)
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        return self._transport.call(
            _path("RotateApiKey"), request, registry_pb2.RotateApiKeyResponse, idempotent=False
        )
