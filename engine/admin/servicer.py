"""gRPC adapter of the admin domain: proto in, AdminService call, proto out."""

from __future__ import annotations

from typing import Any

from engine.admin.service import AdminService, DashboardDetail, DashboardSummary
from engine.registry.servicer import RegistryServicer
from engine.rpc.convert import (
    dashboard_status,
    dashboard_status_name,
    enum_suffix,
    optional_datetime,
    timestamp,
)
from engine.sessions.protos import SESSION_STATUS_PREFIX, session_message
from engine.webhooks.servicer import DELIVERY_STATUS_PREFIX, delivery_message
from workflow_engine.v1 import admin_pb2, admin_pb2_grpc, common_pb2, webhook_pb2


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
    """Implements workflow_engine.v1.AdminService (master key only, enforced by the interceptor)."""

    def __init__(self, service: AdminService, registry_servicer: RegistryServicer) -> None:
        self._service = service
        # Renders DashboardConfig with the effective rate limit, exactly as RegistryService does.
        self._registry_servicer = registry_servicer

    def ListDashboards(
        self, request: admin_pb2.ListDashboardsRequest, context: Any
    ) -> admin_pb2.ListDashboardsResponse:
        summaries, next_token = self._service.list_dashboards(
            dashboard_status_name(request.status),
            request.query,
            request.page_size,
            request.page_token,
        )
        return admin_pb2.ListDashboardsResponse(
            dashboards=[summary_message(s) for s in summaries], next_page_token=next_token
        )

    def GetDashboard(
        self, request: admin_pb2.GetDashboardRequest, context: Any
    ) -> admin_pb2.GetDashboardResponse:
        return admin_pb2.GetDashboardResponse(
            dashboard=self._detail(self._service.get_dashboard(request.agency_id))
        )

    def ListDashboardSessions(
        self, request: admin_pb2.ListDashboardSessionsRequest, context: Any
    ) -> admin_pb2.ListDashboardSessionsResponse:
        views, next_token = self._service.list_dashboard_sessions(
            request.agency_id,
            request.tenant_id,
            _session_status(request.status),
            request.page_size,
            request.page_token,
        )
        return admin_pb2.ListDashboardSessionsResponse(
            sessions=[session_message(v) for v in views], next_page_token=next_token
        )

    def ListAllSessions(
        self, request: admin_pb2.ListAllSessionsRequest, context: Any
    ) -> admin_pb2.ListAllSessionsResponse:
        views, next_token = self._service.list_sessions(
            request.agency_id,
            request.tenant_id,
            _session_status(request.status),
            request.provider,
            request.page_size,
            request.page_token,
        )
        return admin_pb2.ListAllSessionsResponse(
            sessions=[session_message(v) for v in views], next_page_token=next_token
        )

    def SuspendDashboard(
        self, request: admin_pb2.SuspendDashboardRequest, context: Any
    ) -> admin_pb2.SuspendDashboardResponse:
        detail = self._service.suspend(request.agency_id, request.reason)
        return admin_pb2.SuspendDashboardResponse(dashboard=self._detail(detail))

    def ActivateDashboard(
        self, request: admin_pb2.ActivateDashboardRequest, context: Any
    ) -> admin_pb2.ActivateDashboardResponse:
        return admin_pb2.ActivateDashboardResponse(
            dashboard=self._detail(self._service.activate(request.agency_id))
        )

    def SetDashboardRateLimit(
        self, request: admin_pb2.SetDashboardRateLimitRequest, context: Any
    ) -> admin_pb2.SetDashboardRateLimitResponse:
        detail = self._service.set_rate_limit(
            request.agency_id, request.rate_limit.requests_per_second, request.rate_limit.burst
        )
        return admin_pb2.SetDashboardRateLimitResponse(dashboard=self._detail(detail))

    def ListAllDeliveries(
        self, request: admin_pb2.ListAllDeliveriesRequest, context: Any
    ) -> admin_pb2.ListAllDeliveriesResponse:
        status = enum_suffix(webhook_pb2.DeliveryStatus, request.status, DELIVERY_STATUS_PREFIX, "status")
        views, next_token = self._service.list_deliveries(
            request.agency_id, status, request.event_type, request.page_size, request.page_token
        )
        return admin_pb2.ListAllDeliveriesResponse(
            deliveries=[delivery_message(v) for v in views], next_page_token=next_token
        )

    def RecoverFailedDeliveries(
        self, request: admin_pb2.RecoverFailedDeliveriesRequest, context: Any
    ) -> admin_pb2.RecoverFailedDeliveriesResponse:
        since = optional_datetime(request, "since")
        return admin_pb2.RecoverFailedDeliveriesResponse(
            recovered=self._service.recover_failed(request.agency_id, since)
        )

    def GetSystemHealth(
        self, request: admin_pb2.GetSystemHealthRequest, context: Any
    ) -> admin_pb2.GetSystemHealthResponse:
        health = self._service.system_health()
        return admin_pb2.GetSystemHealthResponse(
            database_ok=health.database_ok,
            database_latency_ms=health.database_latency_ms,
            uptime_seconds=health.uptime_seconds,
            version=health.version,
            outbox=admin_pb2.OutboxBacklog(**health.backlog),
            delivery_attempts_5m=health.delivery_attempts_5m,
            delivery_success_rate_5m=health.delivery_success_rate_5m,
            delivery_p95_latency_ms_5m=health.delivery_p95_latency_ms_5m,
            rate_limit_rejections=health.rate_limit_rejections,
            auth_failures=health.auth_failures,
            unroutable_provider_events=health.unroutable_provider_events,
            provider_status=dict(health.provider_status),
        )

    def _detail(self, detail: DashboardDetail) -> admin_pb2.DashboardDetail:
        config = self._registry_servicer.config_message(detail.summary.config)
        return admin_pb2.DashboardDetail(
            summary=summary_message(detail.summary),
            config=config,
            api_keys=[
                admin_pb2.ApiKeyInfo(
                    prefix=k.prefix, create_time=timestamp(k.created_at), expire_time=timestamp(k.expires_at)
                )
                for k in detail.keys
            ],
            rate_limit=config.rate_limit,
            rate_limit_custom=detail.summary.config.rate_limit_rps is not None
            or detail.summary.config.rate_limit_burst is not None,
            status_history=[
                admin_pb2.StatusChange(
                    status=dashboard_status(h.status),
                    actor=h.actor,
                    reason=h.reason,
                    change_time=timestamp(h.changed_at),
                )
                for h in detail.history
            ],
        )


def summary_message(summary: DashboardSummary) -> admin_pb2.DashboardSummary:
    """The DashboardSummary message of a dashboard with its health figures."""
    config = summary.config
    sessions = summary.session_counts
    deliveries = summary.deliveries_24h
    return admin_pb2.DashboardSummary(
        agency_id=config.agency_id,
        dashboard_name=config.dashboard_name,
        dashboard_url=config.dashboard_url,
        status=dashboard_status(config.status),
        create_time=timestamp(config.created_at),
        session_counts=admin_pb2.SessionCounts(
            stopped=sessions.get("STOPPED", 0),
            starting=sessions.get("STARTING", 0),
            scan_qr_code=sessions.get("SCAN_QR_CODE", 0),
            working=sessions.get("WORKING", 0),
            failed=sessions.get("FAILED", 0),
        ),
        deliveries_24h=admin_pb2.DeliveryCounts(
            succeeded=deliveries.get("SUCCEEDED", 0),
            failed=deliveries.get("FAILED", 0),
            pending=deliveries.get("PENDING", 0),
            held=deliveries.get("HELD", 0),
        ),
        last_successful_delivery_time=timestamp(summary.last_success),
    )


def _session_status(status: int) -> str:
    return enum_suffix(common_pb2.SessionStatus, status, SESSION_STATUS_PREFIX, "status")
