"""gRPC adapter of the registry: proto in, domain call, proto out."""

from __future__ import annotations

from typing import Any

from engine.registry.service import ConfigChanges, DashboardView, RegistryService
from engine.rpc.convert import dashboard_status, timestamp
from workflow_engine.v1 import common_pb2, registry_pb2, registry_pb2_grpc


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]
    """Implements workflow_engine.v1.RegistryService."""

    def __init__(self, service: RegistryService, default_rps: float, default_burst: int) -> None:
        self._service = service
        self._default_rps = default_rps
        self._default_burst = default_burst

    def RegisterDashboard(
        self, request: registry_pb2.RegisterDashboardRequest, context: Any
    ) -> registry_pb2.RegisterDashboardResponse:
        registration = self._service.register(
            request.agency_id, request.dashboard_name, request.dashboard_url, request.webhook_secret
        )
        return registry_pb2.RegisterDashboardResponse(
            success=True, api_key=registration.api_key, agency_id=registration.agency_id
        )

    def GetDashboardConfig(
        self, request: registry_pb2.GetDashboardConfigRequest, context: Any
    ) -> registry_pb2.GetDashboardConfigResponse:
        return registry_pb2.GetDashboardConfigResponse(
            config=self.config_message(self._service.get_config(request.agency_id))
        )

    def UpdateDashboardConfig(
        self, request: registry_pb2.UpdateDashboardConfigRequest, context: Any
    ) -> registry_pb2.UpdateDashboardConfigResponse:
        changes = ConfigChanges(
            dashboard_name=request.dashboard_name if request.HasField("dashboard_name") else None,
            dashboard_url=request.dashboard_url if request.HasField("dashboard_url") else None,
            webhook_secret=request.webhook_secret if request.HasField("webhook_secret") else None,
        )
        view = self._service.update_config(request.agency_id, changes)
        return registry_pb2.UpdateDashboardConfigResponse(config=self.config_message(view))

    def ListAgencies(
        self, request: registry_pb2.ListAgenciesRequest, context: Any
    ) -> registry_pb2.ListAgenciesResponse:
        views, next_token = self._service.list_agencies(request.page_size, request.page_token)
        return registry_pb2.ListAgenciesResponse(
            agencies=[
                registry_pb2.Agency(
                    agency_id=view.agency_id,
                    dashboard_name=view.dashboard_name,
                    dashboard_url=view.dashboard_url,
                    status=dashboard_status(view.status),
                    create_time=timestamp(view.created_at),
                )
                for view in views
            ],
            next_page_token=next_token,
        )

    def RotateApiKey(
        self, request: registry_pb2.RotateApiKeyRequest, context: Any
    ) -> registry_pb2.RotateApiKeyResponse:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        rotation = self._service.rotate_api_key(request.agency_id, grace)
        return registry_pb2.RotateApiKeyResponse(
            api_key=rotation.api_key,
            agency_id=rotation.agency_id,
            previous_key_expire_time=timestamp(rotation.previous_key_expires_at),
        )

    def config_message(self, view: DashboardView) -> registry_pb2.DashboardConfig:
        """The DashboardConfig message of a dashboard (the effective rate limit included)."""
        return registry_pb2.DashboardConfig(
            agency_id=view.agency_id,
            dashboard_name=view.dashboard_name,
            dashboard_url=view.dashboard_url,
            webhook_secret_set=view.webhook_secret_set,
            webhook_secret_hint=view.webhook_secret_hint,
            status=dashboard_status(view.status),
            create_time=timestamp(view.created_at),
            update_time=timestamp(view.updated_at),
            rate_limit=common_pb2.RateLimit(
                requests_per_second=view.rate_limit_rps or self._default_rps,
                burst=view.rate_limit_burst or self._default_burst,
            ),
        )
