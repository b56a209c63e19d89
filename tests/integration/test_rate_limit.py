"""Token buckets through the live interceptor: RESOURCE_EXHAUSTED with RetryInfo."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy import update

from engine.registry.models import DashboardRegistration
from tests.support.live import LiveEngine
from tests.support.rpc import PSK_AUTH, Metadata, api_key_auth, detail_of, register
from workflow_engine.v1 import registry_pb2, registry_pb2_grpc


def get_config(live: LiveEngine, metadata: Metadata, agency_id: str = "") -> None:
    registry_pb2_grpc.RegistryServiceStub(live.channel).GetDashboardConfig(
        registry_pb2.GetDashboardConfigRequest(agency_id=agency_id), metadata=metadata
    )


def exhausted(call: Callable[[], None]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    return caught.value


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_dashboard_key_bucket_refuses_with_retry_info(
    start_engine: Callable[..., LiveEngine], backend: str
) -> None:
    live = start_engine(backend, rate_limit_rps=0.1, rate_limit_burst=3)
    # The PSK bucket (per peer) is separate from the key's bucket: registering costs the key nothing.
    key = register(live.channel, "limited").api_key
    other = register(live.channel, "unlimited").api_key

    for _ in range(3):
        get_config(live, api_key_auth(key))
    error = exhausted(lambda: get_config(live, api_key_auth(key)))

    retry = detail_of(error, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 10  # one token at 0.1 token/s
    trailers = dict(error.trailing_metadata())
    assert trailers["retry-after"] == "10"
    assert trailers["ratelimit-policy"] == '"credential";q=3;w=30'
    assert trailers["ratelimit"] == '"credential";r=0;t=10'
    # Another dashboard's key has its own bucket.
    get_config(live, api_key_auth(other))


def test_per_dashboard_override_applies(start_engine: Callable[..., LiveEngine]) -> None:
    live = start_engine(rate_limit_rps=0.1, rate_limit_burst=50)
    key = register(live.channel, "tight").api_key
    with live.engine.database.transaction() as session:
        session.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == "tight")
            .values(rate_limit_rps=0.5, rate_limit_burst=2)
        )
    live.engine.registry.invalidate_cache()

    config = registry_pb2_grpc.RegistryServiceStub(live.channel).GetDashboardConfig(
        registry_pb2.GetDashboardConfigRequest(), metadata=api_key_auth(key)
    )
    assert config.config.rate_limit.burst == 2
    assert config.config.rate_limit.requests_per_second == 0.5
    get_config(live, api_key_auth(key))
    error = exhausted(lambda: get_config(live, api_key_auth(key)))
    assert detail_of(error, error_details_pb2.RetryInfo).retry_delay.seconds == 2


def test_psk_bucket_is_per_peer(start_engine: Callable[..., LiveEngine]) -> None:
    live = start_engine(rate_limit_rps=0.1, rate_limit_burst=2)
    register(live.channel, "psk-a")
    get_config(live, PSK_AUTH, "psk-a")
    exhausted(lambda: get_config(live, PSK_AUTH, "psk-a"))


def test_failed_authentication_is_throttled_per_peer(start_engine: Callable[..., LiveEngine]) -> None:
    live = start_engine(rate_limit_rps=0.1, rate_limit_burst=3)
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as caught:
            get_config(live, (("authorization", "PSK guess"),), "x")
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED

    # Guessing is now throttled for this peer, whatever it presents next.
    error = exhausted(lambda: get_config(live, PSK_AUTH, "x"))
    assert detail_of(error, error_details_pb2.RetryInfo).retry_delay.seconds >= 1
    assert live.engine.guard.counters.auth_failures == 3
    assert live.engine.guard.counters.rate_limit_rejections == 1
