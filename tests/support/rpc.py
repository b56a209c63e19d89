"""Helpers for calling the live engine in tests: credentials as metadata, status details."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from tests.support.constants import MASTER_KEY, PSK, WEBHOOK_SECRET
from workflow_engine.v1 import registry_pb2, registry_pb2_grpc

Metadata = tuple[tuple[str, str], ...]

PSK_AUTH: Metadata = (("authorization", f"PSK {PSK}"),)
MASTER_AUTH: Metadata = (("x-api-key", MASTER_KEY),)


def api_key_auth(key: str) -> Metadata:
    """Metadata presenting a dashboard API key."""
    return (("x-api-key", key),)


def register(channel: grpc.Channel, agency_id: str, **fields: str) -> registry_pb2.RegisterDashboardResponse:
    """Register a dashboard with valid defaults; returns the response (with its API key)."""
    request = registry_pb2.RegisterDashboardRequest(
        agency_id=agency_id,
        dashboard_name=fields.get("dashboard_name", f"Dashboard {agency_id}"),
        dashboard_url=fields.get("dashboard_url", "https://dashboard.example.com/hooks"),
        webhook_secret=fields.get("webhook_secret", WEBHOOK_SECRET),
    )
    response: registry_pb2.RegisterDashboardResponse = registry_pb2_grpc.RegistryServiceStub(
        channel
    ).RegisterDashboard(request, metadata=PSK_AUTH)
    return response


def status_details(error: grpc.RpcError) -> list[Any]:
    """The google.rpc details of a failed call, unpacked into their message types."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return []
    status = status_pb2.Status.FromString(raw)
    unpacked = []
    for detail in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.RetryInfo,
            error_details_pb2.ErrorInfo,
            error_details_pb2.QuotaFailure,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                unpacked.append(message)
    return unpacked


def detail_of(error: grpc.RpcError, kind: type[Any]) -> Any:
    """The single detail of type `kind`; fails the test if absent."""
    found = [d for d in status_details(error) if isinstance(d, kind)]
    assert found, f"no {kind.__name__} detail in {status_details(error)}"
    return found[0]
