"""Builds the gRPC server: every service, health, reflection, one interceptor."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from engine.auth.policy import build_policy_table
from engine.rpc.interceptor import AccessInterceptor
from engine.rpc.reflection import enable_reflection
from workflow_engine.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
)

#: Every service of the engine's contract, in registration order.
SERVICES: tuple[ServiceDescriptor, ...] = (
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    sessions_pb2.DESCRIPTOR.services_by_name["SessionsService"],
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
    webhook_pb2.DESCRIPTOR.services_by_name["WebhookService"],
)

_ADDERS = {
    "workflow_engine.v1.RegistryService": registry_pb2_grpc.add_RegistryServiceServicer_to_server,
    "workflow_engine.v1.SessionsService": sessions_pb2_grpc.add_SessionsServiceServicer_to_server,
    "workflow_engine.v1.AdminService": admin_pb2_grpc.add_AdminServiceServicer_to_server,
    "workflow_engine.v1.WebhookService": webhook_pb2_grpc.add_WebhookServiceServicer_to_server,
}

#: Servicers used until a domain provides its own: every RPC answers UNIMPLEMENTED.
UNIMPLEMENTED_SERVICERS = {
    "workflow_engine.v1.RegistryService": registry_pb2_grpc.RegistryServiceServicer,
    "workflow_engine.v1.SessionsService": sessions_pb2_grpc.SessionsServiceServicer,
    "workflow_engine.v1.AdminService": admin_pb2_grpc.AdminServiceServicer,
    "workflow_engine.v1.WebhookService": webhook_pb2_grpc.WebhookServiceServicer,
}

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class GrpcServer:
    """The engine's gRPC server and its health service."""

    def __init__(
        self, interceptor: AccessInterceptor, servicers: dict[str, Any], address: str, workers: int
    ) -> None:
        self.health = health.HealthServicer()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
            interceptors=(interceptor,),
            options=(
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ),
        )
        for service in SERVICES:
            servicer = servicers.get(service.full_name) or UNIMPLEMENTED_SERVICERS[service.full_name]()
            _ADDERS[service.full_name](servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        enable_reflection(self._server, [s.full_name for s in SERVICES] + [health.SERVICE_NAME])
        self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")

    def start(self) -> None:
        """Start serving and report every service SERVING."""
        self._server.start()
        self.set_serving(True)

    def set_serving(self, serving: bool) -> None:
        """Report the overall and per-service health status."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *(s.full_name for s in SERVICES)):
            self.health.set(name, status)

    def stop(self, grace_seconds: float) -> None:
        """Refuse new calls, let calls in flight finish for up to `grace_seconds`."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace_seconds).wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or `timeout` passes); True if it stopped."""
        return bool(self._server.wait_for_termination(timeout))


def policy_table(services: Sequence[ServiceDescriptor] = SERVICES) -> Any:
    """The access rules of every RPC of `services`, read from their descriptors."""
    return build_policy_table(services)
