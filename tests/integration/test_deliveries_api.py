"""The dashboard-facing deliveries API: synchronous test sends, `since` filters, bulk redelivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import update

from engine.registry.models import STATUS_SUSPENDED, DashboardRegistration
from engine.webhooks.models import WebhookDelivery
from tests.support.live import LiveEngine
from tests.support.receiver import WebhookReceiver
from tests.support.rpc import api_key_auth, register
from workflow_engine.v1 import webhook_pb2, webhook_pb2_grpc


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as started:
        yield started


def stub(live: LiveEngine) -> webhook_pb2_grpc.WebhookServiceStub:
    return webhook_pb2_grpc.WebhookServiceStub(live.channel)


def test_send_test_webhook_returns_the_attempts_outcome(live: LiveEngine, receiver: WebhookReceiver) -> None:
    key = register(live.channel, "agency-a", dashboard_url=receiver.url).api_key
    receiver.respond(202, body=b"thanks")
    delivery = (
        stub(live)
        .SendTestWebhook(webhook_pb2.SendTestWebhookRequest(note="hi"), metadata=api_key_auth(key))
        .delivery
    )
    assert delivery.status == webhook_pb2.DELIVERY_STATUS_SUCCEEDED
    assert [(a.attempt_number, a.response_status, a.response_body_excerpt) for a in delivery.attempts] == [
        (1, 202, "thanks")
    ]
    assert receiver.requests[0].webhook_id == delivery.event_id

    receiver.respond(500, body=b"x" * 5000)
    failed = (
        stub(live).SendTestWebhook(webhook_pb2.SendTestWebhookRequest(), metadata=api_key_auth(key)).delivery
    )
    assert failed.status == webhook_pb2.DELIVERY_STATUS_PENDING  # retried on the schedule
    assert failed.attempts[0].response_status == 500
    assert failed.attempts[0].response_body_excerpt == "x" * 1024  # the first 1 KiB


def test_a_test_send_to_a_suspended_dashboard_is_held_not_sent(
    live: LiveEngine, receiver: WebhookReceiver
) -> None:
    register(live.channel, "agency-a", dashboard_url=receiver.url)
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == "agency-a")
            .values(status=STATUS_SUSPENDED)
        )
    live.engine.registry.forget("agency-a")
    master = (("x-api-key", live.engine.settings.master_api_key.get()),)
    delivery = (
        stub(live)
        .SendTestWebhook(webhook_pb2.SendTestWebhookRequest(agency_id="agency-a"), metadata=master)
        .delivery
    )
    assert delivery.status == webhook_pb2.DELIVERY_STATUS_HELD
    assert list(delivery.attempts) == []
    assert receiver.stays_at(0, 0.3)


def test_list_deliveries_since_and_redeliver_failed_since(
    live: LiveEngine, receiver: WebhookReceiver
) -> None:
    key = register(live.channel, "agency-a", dashboard_url=receiver.url).api_key
    auth = api_key_auth(key)
    receiver.respond(500)
    sent = [
        stub(live).SendTestWebhook(webhook_pb2.SendTestWebhookRequest(note=str(n)), metadata=auth).delivery
        for n in range(3)
    ]
    # Make them dead letters, the oldest created a day ago.
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.agency_id == "agency-a")
            .values(status="FAILED", next_attempt_at=None)
        )
        tx.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == sent[0].delivery_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=1))
        )
    since = Timestamp()
    since.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    recent = (
        stub(live).ListDeliveries(webhook_pb2.ListDeliveriesRequest(since=since), metadata=auth).deliveries
    )
    assert {d.delivery_id for d in recent} == {d.delivery_id for d in sent[1:]}

    receiver.respond(200)
    answer = stub(live).RedeliverFailedWebhooks(
        webhook_pb2.RedeliverFailedWebhooksRequest(since=since), metadata=auth
    )
    assert answer.redelivered == 2
    receiver.wait_until(
        lambda got: {r.webhook_id for r in got if r.reply.status == 200} >= {d.event_id for d in sent[1:]},
        what="the two recent failed deliveries, again",
    )
    oldest = stub(live).GetDelivery(
        webhook_pb2.GetDeliveryRequest(delivery_id=sent[0].delivery_id), metadata=auth
    )
    assert oldest.delivery.status == webhook_pb2.DELIVERY_STATUS_FAILED
    # Another agency's key cannot redeliver agency-a's deliveries.
    other = register(live.channel, "agency-b", dashboard_url=receiver.url).api_key
    with pytest.raises(grpc.RpcError) as refused:
        stub(live).RedeliverFailedWebhooks(
            webhook_pb2.RedeliverFailedWebhooksRequest(agency_id="agency-a"), metadata=api_key_auth(other)
        )
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
