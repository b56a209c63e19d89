"""Webhook bodies: engine.webhooks.event_json writes what protobuf's json_format writes.

Each case compares `message_to_dict` with `json_format.MessageToDict(…,
always_print_fields_with_no_presence=True)` on the same message: the events the outbox writes,
and message types with the other field kinds (proto2 presence, 64-bit integers, repeated and
nested messages, maps, unknown enum numbers, doubles and bytes, well-known types).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from engine.webhooks.event_json import message_to_dict
from engine.webhooks.outbox import event_body
from workflow_engine.v1 import admin_pb2, common_pb2, webhook_pb2


def _reference(message: Message) -> Any:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def _stamp(seconds: int, nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _message(**fields: Any) -> common_pb2.Message:
    return common_pb2.Message(
        message_id="msg_1",
        conversation_id="cnv_1",
        session_id="ses_1",
        agency_id="agency-a",
        tenant_id="tenant-1",
        direction=common_pb2.MESSAGE_DIRECTION_INBOUND,
        **{"from": "15550001111"},
        to="15550002222",
        text='héllo \u2603 "quoted" \\ \n',
        status=common_pb2.MESSAGE_STATUS_DELIVERED,
        create_time=_stamp(1_700_000_000, 123_000_000),
        provider_message_id="true_15550001111@c.us_ABC",
        **fields,
    )


def _events() -> list[webhook_pb2.WebhookEvent]:
    base = {"id": "evt_1", "agency_id": "agency-a", "tenant_id": "tenant-1", "session_id": "ses_1"}
    received = webhook_pb2.WebhookEvent(type="message.received", timestamp=_stamp(1_700_000_001, 0), **base)
    received.message_received.message.CopyFrom(_message())
    status = webhook_pb2.WebhookEvent(type="message.status", timestamp=_stamp(1_700_000_002, 5_000), **base)
    status.message_status.message.CopyFrom(_message(update_time=_stamp(1_700_000_003, 7)))
    status.message_status.previous_status = common_pb2.MESSAGE_STATUS_SENT
    session = webhook_pb2.WebhookEvent(type="session.status", timestamp=_stamp(0, 1_000_000), **base)
    session.session_status.session.CopyFrom(
        common_pb2.Session(
            session_id="ses_1",
            agency_id="agency-a",
            name="front desk",
            provider="waha",
            status=common_pb2.SESSION_STATUS_WORKING,
            metadata={"b": "2", "a": "1", "empty": ""},
            create_time=_stamp(1_600_000_000, 999_999_999),
        )
    )
    session.session_status.previous_status = common_pb2.SESSION_STATUS_SCAN_QR_CODE
    test = webhook_pb2.WebhookEvent(type="webhook.test", **base)
    test.test.note = "ping"
    unknown_enum = webhook_pb2.WebhookEvent(type="message.status")
    unknown_enum.message_status.previous_status = 42  # type: ignore[assignment]  # an enum number from a newer peer
    return [received, status, session, test, unknown_enum, webhook_pb2.WebhookEvent()]


@pytest.mark.parametrize("event", _events(), ids=lambda event: event.type or "empty")
def test_webhook_events_are_written_as_json_format_writes_them(event: webhook_pb2.WebhookEvent) -> None:
    assert message_to_dict(event) == _reference(event)


def test_the_outbox_body_is_the_events_json() -> None:
    for event in _events():
        assert json.loads(event_body(event)) == _reference(event)


def test_other_field_kinds_match_json_format() -> None:
    # proto2: every scalar has presence; int64 as strings; repeated strings and messages; nesting.
    proto = descriptor_pb2.FileDescriptorProto(
        name="x.proto",
        dependency=["a.proto", "b.proto"],
        public_dependency=[0, 1],
        message_type=[
            descriptor_pb2.DescriptorProto(
                name="M",
                field=[
                    descriptor_pb2.FieldDescriptorProto(
                        name="f", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64
                    )
                ],
                reserved_range=[descriptor_pb2.DescriptorProto.ReservedRange(start=5, end=9)],
            )
        ],
        options=descriptor_pb2.FileOptions(
            java_multiple_files=True, optimize_for=descriptor_pb2.FileOptions.SPEED
        ),
    )
    # doubles, bytes and 64-bit integers: left to json_format.
    option = descriptor_pb2.UninterpretedOption(
        positive_int_value=2**63, negative_int_value=-(2**62), double_value=0.1, string_value=b"\x00\xff"
    )
    for message in (
        proto,
        admin_pb2.OutboxBacklog(due=2**40, retrying=-3, held=0),  # int64: strings, in proto3
        descriptor_pb2.FileDescriptorProto(),
        option,
        _stamp(1, 2),
        duration_pb2.Duration(seconds=3, nanos=500_000_000),
        struct_pb2.Struct(fields={"k": struct_pb2.Value(number_value=1.5)}),
    ):
        assert message_to_dict(message) == _reference(message)


@pytest.mark.parametrize("nanos", [0, 1, 1_000, 1_000_000, 120_000_000, 999_999_999])
def test_timestamps_have_as_many_fraction_digits_as_json_format_gives(nanos: int) -> None:
    event = webhook_pb2.WebhookEvent(timestamp=_stamp(1_700_000_000, nanos))
    assert message_to_dict(event)["timestamp"] == _reference(event)["timestamp"]
