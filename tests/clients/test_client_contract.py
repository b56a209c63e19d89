"""Every dashboard-facing RPC has a method in the Python client, so a new RPC cannot be forgotten.

The method of an RPC is the snake_case of its name, except for the few documented below.
RPCs that dashboards never call (provider ingress, the admin API) are listed with the reason.
"""

from __future__ import annotations

import inspect
import re

import pytest

from engine.rpc.server import SERVICES
from workflow_engine_client import EngineClient, RegistrationClient

#: Which client covers each service.
CLIENT_OF_SERVICE: dict[str, type] = {
    "workflow_engine.v1.RegistryService": RegistrationClient,
    "workflow_engine.v1.SessionsService": EngineClient,
    "workflow_engine.v1.WebhookService": EngineClient,
}

#: RPCs whose client method is not the snake_case of their name.
RENAMED = {
    "workflow_engine.v1.RegistryService.RegisterDashboard": "register",
    "workflow_engine.v1.RegistryService.GetDashboardConfig": "get_config",
    "workflow_engine.v1.RegistryService.UpdateDashboardConfig": "update_config",
}

#: RPCs deliberately left out of the dashboard clients, with the reason.
NOT_FOR_DASHBOARDS = {
    "workflow_engine.v1.WebhookService.ReceiveProviderWebhook": "called by messaging providers",
    "workflow_engine.v1.WebhookService.VerifyProviderWebhook": "called by messaging providers",
}
#: Services no dashboard calls at all.
SERVICES_NOT_FOR_DASHBOARDS = {"workflow_engine.v1.AdminService": "the engine admins' master-key API"}


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def dashboard_rpcs() -> list[tuple[str, str]]:
    """(service full name, method name) of every RPC a dashboard client must offer."""
    found = []
    for service in SERVICES:
        if service.full_name in SERVICES_NOT_FOR_DASHBOARDS:
            continue
        for method in service.methods:
            if f"{service.full_name}.{method.name}" not in NOT_FOR_DASHBOARDS:
                found.append((service.full_name, method.name))
    return found


def test_every_service_is_either_covered_or_excluded() -> None:
    names = {service.full_name for service in SERVICES}
    assert names == set(CLIENT_OF_SERVICE) | set(SERVICES_NOT_FOR_DASHBOARDS)


def test_the_documented_exceptions_name_real_rpcs_and_real_methods() -> None:
    every_rpc = {f"{s.full_name}.{m.name}" for s in SERVICES for m in s.methods}
    assert set(RENAMED) <= every_rpc
    assert set(NOT_FOR_DASHBOARDS) <= every_rpc
    for rpc, method_name in RENAMED.items():
        client = CLIENT_OF_SERVICE[rpc.rsplit(".", 1)[0]]
        assert callable(getattr(client, method_name, None)), f"{client.__name__}.{method_name}"
    for rpc in NOT_FOR_DASHBOARDS:
        service, name = rpc.rsplit(".", 1)
        assert not hasattr(CLIENT_OF_SERVICE[service], snake_case(name))


@pytest.mark.parametrize(
    ("service", "rpc"), dashboard_rpcs(), ids=lambda value: str(value).rsplit(".", 1)[-1]
)
def test_dashboard_rpc_has_a_client_method(service: str, rpc: str) -> None:
    client = CLIENT_OF_SERVICE[service]
    expected = RENAMED.get(f"{service}.{rpc}", snake_case(rpc))
    method = getattr(client, expected, None)
    assert callable(method), f"{service}/{rpc} has no client method {client.__name__}.{expected}"
    # The method really calls that RPC (its full path appears in its source).
    source = inspect.getsource(method)
    assert f'"{rpc}"' in source, f"{client.__name__}.{expected} does not call {rpc}"
    assert method.__doc__, f"{client.__name__}.{expected} has no docstring"


def test_snake_case() -> None:
    assert snake_case("GetSessionQr") == "get_session_qr"
    assert snake_case("SimulateInboundMessage") == "simulate_inbound_message"
    assert snake_case("RotateApiKey") == "rotate_api_key"
