"""gRPC adapter of the webhook domain: provider ingress, the signing key, deliveries."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from engine.rpc.convert import enum_suffix, optional_datetime, timestamp
from engine.rpc.metadata import HTTP_CODE_KEY
from engine.webhooks.deliveries import DeliveryService, DeliveryView
from engine.webhooks.ingress import ProviderIngress
from engine.webhooks.signing import EngineSigner
from workflow_engine.v1 import webhook_pb2, webhook_pb2_grpc

DELIVERY_STATUS_PREFIX = "DELIVERY_STATUS_"


class WebhookServicer(webhook_pb2_grpc.WebhookServiceServicer):  # type: ignore[misc]
    """Implements workflow_engine.v1.WebhookService."""

    def __init__(self, ingress: ProviderIngress, deliveries: DeliveryService, signer: EngineSigner) -> None:
        self._ingress = ingress
        self._deliveries = deliveries
        self._signer = signer

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

    def GetWebhookSigningKey(
        self, request: webhook_pb2.GetWebhookSigningKeyRequest, context: Any
    ) -> webhook_pb2.GetWebhookSigningKeyResponse:
        return webhook_pb2.GetWebhookSigningKeyResponse(
            public_key=self._signer.public_key, algorithm="ed25519"
        )

    def ListDeliveries(
        self, request: webhook_pb2.ListDeliveriesRequest, context: Any
    ) -> webhook_pb2.ListDeliveriesResponse:
        status = enum_suffix(webhook_pb2.DeliveryStatus, request.status, DELIVERY_STATUS_PREFIX, "status")
        since = optional_datetime(request, "since")
        views, next_token = self._deliveries.list_deliveries(
            request.agency_id, status, request.event_type, request.page_size, request.page_token, since
        )
        return webhook_pb2.ListDeliveriesResponse(
            deliveries=[delivery_message(v) for v in views], next_page_token=next_token
        )

    def GetDelivery(
        self, request: webhook_pb2.GetDeliveryRequest, context: Any
    ) -> webhook_pb2.GetDeliveryResponse:
        view = self._deliveries.get_delivery(request.agency_id, request.delivery_id)
        return webhook_pb2.GetDeliveryResponse(delivery=delivery_message(view))

    def RedeliverWebhook(
        self, request: webhook_pb2.RedeliverWebhookRequest, context: Any
    ) -> webhook_pb2.RedeliverWebhookResponse:
        view = self._deliveries.redeliver(request.agency_id, request.delivery_id)
        return webhook_pb2.RedeliverWebhookResponse(delivery=delivery_message(view))

    def RedeliverFailedWebhooks(
        self, request: webhook_pb2.RedeliverFailedWebhooksRequest, context: Any
    ) -> webhook_pb2.RedeliverFailedWebhooksResponse:
        since = optional_datetime(request, "since")
        return webhook_pb2.RedeliverFailedWebhooksResponse(
            redelivered=self._deliveries.recover_failed(request.agency_id, since)
        )

    def SendTestWebhook(
        self, request: webhook_pb2.SendTestWebhookRequest, context: Any
    ) -> webhook_pb2.SendTestWebhookResponse:
        view = self._deliveries.send_test(request.agency_id, request.note)
        return webhook_pb2.SendTestWebhookResponse(delivery=delivery_message(view))


def delivery_message(view: DeliveryView) -> webhook_pb2.Delivery:
    """The Delivery message of a stored delivery (its event parsed back from the exact body)."""
    row = view.delivery
    message = webhook_pb2.Delivery(
        delivery_id=row.delivery_id,
        agency_id=row.agency_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=DELIVERY_STATUS_PREFIX + row.status,
        attempt_count=row.attempt_count,
        create_time=timestamp(row.created_at),
        next_attempt_time=timestamp(row.next_attempt_at),
        last_attempt_time=timestamp(row.last_attempt_at),
        attempts=[
            webhook_pb2.DeliveryAttempt(
                attempt_number=a.attempt_number,
                attempt_time=timestamp(a.attempted_at),
                response_status=a.response_status,
                response_body_excerpt=a.response_excerpt,
                duration_ms=a.duration_ms,
                error=a.error,
            )
            for a in view.attempts
        ],
    )
    json_format.Parse(row.payload, message.event, ignore_unknown_fields=True)
    return message
