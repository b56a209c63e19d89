"""The registry over a live gRPC server, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy import func, select

from engine.auth.credentials import API_KEY_PREFIX, hash_api_key
from engine.crypto import SecretCipher
from engine.registry.models import ApiKey, DashboardRegistration
from tests.support.constants import SECRET_KEY, WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.rpc import MASTER_AUTH, PSK_AUTH, api_key_auth, detail_of, register
from workflow_engine.v1 import common_pb2, registry_pb2, registry_pb2_grpc


def stub(live: LiveEngine) -> registry_pb2_grpc.RegistryServiceStub:
    return registry_pb2_grpc.RegistryServiceStub(live.channel)


def test_register_returns_seed_shape_and_a_one_time_key(live: LiveEngine) -> None:
    response = register(live.channel, "agency_abc123")

    assert response.success is True
    assert response.agency_id == "agency_abc123"
    assert response.api_key.startswith(API_KEY_PREFIX) and len(response.api_key) > 32
    with live.engine.database.reader() as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.agency_id == "agency_abc123")).one()
        registration = session.get(DashboardRegistration, "agency_abc123")
    assert stored.key_hash == hash_api_key(response.api_key)
    assert stored.prefix == response.api_key[: len(stored.prefix)]
    assert registration is not None
    assert response.api_key not in (stored.key_hash, stored.prefix)
    assert WEBHOOK_SECRET.encode() not in registration.webhook_secret_ciphertext
    assert SecretCipher(SECRET_KEY).open(registration.webhook_secret_ciphertext) == WEBHOOK_SECRET


def test_register_twice_is_already_exists(live: LiveEngine) -> None:
    register(live.channel, "dup")
    with pytest.raises(grpc.RpcError) as caught:
        register(live.channel, "dup")
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS


def test_get_config_with_psk_and_with_own_key(live: LiveEngine) -> None:
    key = register(live.channel, "cfg", dashboard_name="Config Co").api_key

    by_psk = (
        stub(live)
        .GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(agency_id="cfg"), metadata=PSK_AUTH)
        .config
    )
    by_key = (
        stub(live)
        .GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key))
        .config
    )

    assert by_psk == by_key
    assert by_psk.agency_id == "cfg"
    assert by_psk.dashboard_name == "Config Co"
    assert by_psk.webhook_secret_set is True
    assert by_psk.webhook_secret_hint == WEBHOOK_SECRET[-4:]
    assert by_psk.status == common_pb2.DASHBOARD_STATUS_ACTIVE
    assert by_psk.rate_limit.burst > 0
    assert WEBHOOK_SECRET not in str(by_psk)


def test_get_config_of_unknown_agency_is_not_found(live: LiveEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(agency_id="nobody"), metadata=PSK_AUTH
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def test_update_config_changes_only_the_fields_sent(live: LiveEngine) -> None:
    key = register(
        live.channel, "patchme", dashboard_name="Before", dashboard_url="https://before.example"
    ).api_key
    before = (
        stub(live)
        .GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key))
        .config
    )

    after = (
        stub(live)
        .UpdateDashboardConfig(
            registry_pb2.UpdateDashboardConfigRequest(dashboard_name="After"), metadata=api_key_auth(key)
        )
        .config
    )

    assert after.dashboard_name == "After"
    assert after.dashboard_url == "https://before.example"
    assert after.webhook_secret_hint == before.webhook_secret_hint
    assert after.update_time.ToDatetime() >= before.update_time.ToDatetime()

    new_secret = "another-secret-that-is-long-enough-XYZW"
    rotated = (
        stub(live)
        .UpdateDashboardConfig(
            registry_pb2.UpdateDashboardConfigRequest(agency_id="patchme", webhook_secret=new_secret),
            metadata=PSK_AUTH,
        )
        .config
    )
    assert rotated.webhook_secret_hint == "XYZW"
    assert rotated.dashboard_name == "After"
    # Reads right after a write see it (the registration cache is updated by the write).
    reread = (
        stub(live)
        .GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key))
        .config
    )
    assert reread == rotated


def test_list_agencies_paginates(live: LiveEngine) -> None:
    names = [f"page-{i:02d}" for i in range(5)]
    for name in names:
        register(live.channel, name)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = stub(live).ListAgencies(
            registry_pb2.ListAgenciesRequest(page_size=2, page_token=token), metadata=PSK_AUTH
        )
        assert len(page.agencies) <= 2
        seen.extend(a.agency_id for a in page.agencies)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    assert pages == 3


def test_list_agencies_rejects_a_forged_token(live: LiveEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).ListAgencies(
            registry_pb2.ListAgenciesRequest(page_token="not-a-token!"), metadata=PSK_AUTH
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert detail_of(caught.value, error_details_pb2.BadRequest).field_violations[0].field == "pageToken"


def test_rotate_key_keeps_the_old_key_for_the_grace_period(live: LiveEngine) -> None:
    old = register(live.channel, "rotor").api_key

    rotated = stub(live).RotateApiKey(
        registry_pb2.RotateApiKeyRequest(grace_period_seconds=3600), metadata=api_key_auth(old)
    )

    assert rotated.api_key != old and rotated.agency_id == "rotor"
    remaining = rotated.previous_key_expire_time.ToSeconds() - time.time()
    assert 3500 < remaining <= 3600
    for key in (old, rotated.api_key):
        config = stub(live).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key)
        )
        assert config.config.agency_id == "rotor"


def test_rotate_key_default_grace_is_one_day(live: LiveEngine) -> None:
    register(live.channel, "rotor-default")
    rotated = stub(live).RotateApiKey(
        registry_pb2.RotateApiKeyRequest(agency_id="rotor-default"), metadata=PSK_AUTH
    )
    remaining = rotated.previous_key_expire_time.ToSeconds() - time.time()
    assert 86300 < remaining <= 86400


def test_rotate_key_with_zero_grace_revokes_the_old_key_at_once(live: LiveEngine) -> None:
    old = register(live.channel, "rotor0").api_key
    new = (
        stub(live)
        .RotateApiKey(registry_pb2.RotateApiKeyRequest(grace_period_seconds=0), metadata=api_key_auth(old))
        .api_key
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub(live).GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(old))
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert stub(live).GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(new))


@pytest.mark.parametrize("grace", [-1, 7 * 86400 + 1])
def test_rotate_key_rejects_grace_out_of_range(live: LiveEngine, grace: int) -> None:
    old = register(live.channel, "rotor-bad").api_key
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).RotateApiKey(
            registry_pb2.RotateApiKeyRequest(grace_period_seconds=grace), metadata=api_key_auth(old)
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (
        detail_of(caught.value, error_details_pb2.BadRequest).field_violations[0].field
        == "gracePeriodSeconds"
    )
    assert stub(live).GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(old))


def test_master_key_may_not_use_registry_routes(live: LiveEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).ListAgencies(registry_pb2.ListAgenciesRequest(), metadata=MASTER_AUTH)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


def count_rows(live: LiveEngine) -> tuple[int, int]:
    with live.engine.database.reader() as session:
        return (
            session.scalar(select(func.count()).select_from(DashboardRegistration)) or 0,
            session.scalar(select(func.count()).select_from(ApiKey)) or 0,
        )


@pytest.mark.parametrize(
    ("field", "overrides", "json_name"),
    [
        ("agency_id", {"agency_id": "bad agency!"}, "agencyId"),
        ("agency_id", {"agency_id": "a" * 65}, "agencyId"),
        ("agency_id", {"agency_id": ""}, "agencyId"),
        ("dashboard_name", {"dashboard_name": ""}, "dashboardName"),
        ("dashboard_name", {"dashboard_name": "n" * 201}, "dashboardName"),
        ("dashboard_name", {"dashboard_name": "nul\x00inside"}, "dashboardName"),
        ("dashboard_url", {"dashboard_url": "myapp.com"}, "dashboardUrl"),
        ("dashboard_url", {"dashboard_url": "ftp://myapp.com"}, "dashboardUrl"),
        ("dashboard_url", {"dashboard_url": "https://"}, "dashboardUrl"),
        ("dashboard_url", {"dashboard_url": "https://exa\x00mple.com"}, "dashboardUrl"),
        ("webhook_secret", {"webhook_secret": "x" * 31}, "webhookSecret"),
    ],
)
def test_bad_registration_is_invalid_argument_and_writes_nothing(
    live: LiveEngine, field: str, overrides: dict[str, str], json_name: str
) -> None:
    fields = {
        "agency_id": "valid-agency",
        "dashboard_name": "Valid",
        "dashboard_url": "https://valid.example",
        "webhook_secret": WEBHOOK_SECRET,
        **overrides,
    }
    with pytest.raises(grpc.RpcError) as caught:
        registry_pb2_grpc.RegistryServiceStub(live.channel).RegisterDashboard(
            registry_pb2.RegisterDashboardRequest(**fields), metadata=PSK_AUTH
        )

    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = detail_of(caught.value, error_details_pb2.BadRequest).field_violations
    assert [v.field for v in violations] == [json_name]
    assert json_name in caught.value.details()
    assert count_rows(live) == (0, 0)


def test_several_bad_fields_are_named_together(live: LiveEngine) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).RegisterDashboard(
            registry_pb2.RegisterDashboardRequest(
                agency_id="ok", dashboard_name="", dashboard_url="nope", webhook_secret="short"
            ),
            metadata=PSK_AUTH,
        )
    violations = detail_of(caught.value, error_details_pb2.BadRequest).field_violations
    assert {v.field for v in violations} == {"dashboardName", "dashboardUrl", "webhookSecret"}
    assert "short" not in caught.value.details()


def test_bad_update_changes_nothing(live: LiveEngine) -> None:
    key = register(live.channel, "keepme", dashboard_url="https://keep.example").api_key
    with pytest.raises(grpc.RpcError) as caught:
        stub(live).UpdateDashboardConfig(
            registry_pb2.UpdateDashboardConfigRequest(dashboard_name="New name", dashboard_url="not a url"),
            metadata=api_key_auth(key),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    config = stub(live).GetDashboardConfig(
        registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key)
    )
    assert config.config.dashboard_name == "Dashboard keepme"
    assert config.config.dashboard_url == "https://keep.example"


def test_failed_call_returns_its_request_id(live: LiveEngine) -> None:
    with pytest.raises(grpc.RpcError) as generated:
        stub(live).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(agency_id="ghost"), metadata=PSK_AUTH
        )
    assert dict(generated.value.trailing_metadata())["x-request-id"].startswith("req_")

    with pytest.raises(grpc.RpcError) as given:
        stub(live).GetDashboardConfig(
            registry_pb2.GetDashboardConfigRequest(agency_id="ghost"),
            metadata=(*PSK_AUTH, ("x-request-id", "trace-123")),
        )
    assert dict(given.value.trailing_metadata())["x-request-id"] == "trace-123"
