"""gRPC adapter of the webhook domain: provider ingress (deliveries come with the outbox)."""

from __future__ import annotations

from typing import Any

from engine.gateway.app import HTTP_CODE_KEY
from engine.webhooks.ingress import ProviderIngress
from workflow_engine.v1 import webhook_pb2, webhook_pb2_grpc


class WebhookServicer(webhook_pb2_grpc.WebhookServiceServicer):  # type: ignore[misc]
    """Implements workflow_engine.v1.WebhookService."""

    def __init__(self, ingress: ProviderIngress) -> None:
        self._ingress = ingress

    def ReceiveProviderWebhook(
        self, request: webhook_pb2.ReceiveProviderWebhookRequest, context: Any
    ) -> webhook_pb2.ReceiveProviderWebhookResponse:
        # The AccessGuard has verified the provider's signature before this runs.
        result = self._ingress.receive(request.provider, request.body.data)
        if result.unroutable:
            # 202 over REST: taken, but not for any session here; the provider must not retry.
            context.send_initial_metadata(((HTTP_CODE_KEY, "202"),))
        return webhook_pb2.ReceiveProviderWebhookResponse(
            accepted=result.accepted, unroutable=result.unroutable
        )
