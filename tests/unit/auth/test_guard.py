"""AccessGuard: authentication, credential rules, agency scoping and rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from google.protobuf.message import Message

from engine.auth.guard import (
    UNAUTHENTICATED_MESSAGE,
    AccessGuard,
    CallCredentials,
    ResolvedKey,
)
from engine.auth.identity import ANONYMOUS, CallerKind, Identity
from engine.auth.policy import AccessRule, rule_of
from engine.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from engine.ratelimit import RateLimiter
from engine.rpc.server import SERVICES
from workflow_engine.v1 import options_pb2, registry_pb2

PSK = "psk-0123456789abcdef0123456789abcdef"
MASTER = "master-0123456789abcdef0123456789ab"
DASH_KEY = "wfe_" + "A" * 40
SUSPENDED_KEY = "wfe_" + "S" * 40
LIMITED_KEY = "wfe_" + "L" * 40
UNKNOWN_KEY = "wfe_" + "U" * 40
PEER = "ipv4:10.0.0.1:40000"
OTHER_PEER = "ipv4:10.0.0.2:40000"

DASHBOARD_IDENTITY = Identity(CallerKind.DASHBOARD, agency_id="acme", key_id="key_acme")

PSK_ONLY = AccessRule(frozenset({options_pb2.CREDENTIAL_PSK}))
MASTER_ONLY = AccessRule(frozenset({options_pb2.CREDENTIAL_MASTER_KEY}))
OPEN = AccessRule(frozenset({options_pb2.CREDENTIAL_NONE}))
PROVIDER_ONLY = AccessRule(frozenset({options_pb2.CREDENTIAL_PROVIDER_SIGNATURE}))
SCOPED = AccessRule(
    frozenset(
        {options_pb2.CREDENTIAL_PSK, options_pb2.CREDENTIAL_DASHBOARD_KEY, options_pb2.CREDENTIAL_MASTER_KEY}
    ),
    "agency_id",
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeKeys:
    """A key registry in memory that remembers what it was asked."""

    keys: dict[str, ResolvedKey] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def __call__(self, plaintext: str) -> ResolvedKey | None:
        self.asked.append(plaintext)
        return self.keys.get(plaintext)


@dataclass
class Setup:
    guard: AccessGuard
    clock: FakeClock
    keys: FakeKeys
    provider_calls: list[Message]


def make_setup(
    *,
    rate: float = 1.0,
    burst: int = 1000,
    failed_rate: float = 0.1,
    failed_burst: int = 3,
    psk: str = PSK,
    master: str = MASTER,
    provider_ok: bool | None = None,
) -> Setup:
    clock = FakeClock()
    keys = FakeKeys(
        {
            DASH_KEY: ResolvedKey(DASHBOARD_IDENTITY, suspended=False),
            SUSPENDED_KEY: ResolvedKey(
                Identity(CallerKind.DASHBOARD, agency_id="gone", key_id="key_gone"), suspended=True
            ),
            LIMITED_KEY: ResolvedKey(
                Identity(
                    CallerKind.DASHBOARD,
                    agency_id="small",
                    key_id="key_small",
                    rate_limit_rps=0.5,
                    rate_limit_burst=2,
                ),
                suspended=False,
            ),
        }
    )
    provider_calls: list[Message] = []

    def verify(request: Message, _credentials: CallCredentials) -> bool:
        provider_calls.append(request)
        return bool(provider_ok)

    guard = AccessGuard(
        psk=psk,
        master_key=master,
        resolve_key=keys,
        limiter=RateLimiter(rate, burst, clock=clock),
        failed_auth_limiter=RateLimiter(failed_rate, failed_burst, clock=clock),
        verify_provider=verify if provider_ok is not None else None,
    )
    return Setup(guard, clock, keys, provider_calls)


@pytest.fixture
def setup() -> Setup:
    return make_setup()


def creds(authorization: str = "", api_key: str = "", peer: str = PEER) -> CallCredentials:
    return CallCredentials(authorization=authorization, api_key=api_key, peer=peer)


def config_request(agency_id: str = "") -> registry_pb2.GetDashboardConfigRequest:
    return registry_pb2.GetDashboardConfigRequest(agency_id=agency_id)


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["PSK", "psk", "Psk", "pSk"])
def test_psk_is_accepted_with_case_insensitive_scheme(setup: Setup, scheme: str) -> None:
    identity = setup.guard.admit(PSK_ONLY, creds(f"{scheme} {PSK}"), registry_pb2.RegisterDashboardRequest())
    assert identity.kind is CallerKind.PSK
    assert identity.agency_id == ""


def test_psk_surrounding_whitespace_is_ignored(setup: Setup) -> None:
    assert setup.guard.admit(PSK_ONLY, creds(f"PSK   {PSK}  "), config_request()).kind is CallerKind.PSK


def test_master_key_as_x_api_key(setup: Setup) -> None:
    assert setup.guard.admit(MASTER_ONLY, creds(api_key=MASTER), config_request()).kind is CallerKind.MASTER


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_master_key_as_bearer(setup: Setup, scheme: str) -> None:
    identity = setup.guard.admit(MASTER_ONLY, creds(f"{scheme} {MASTER}"), config_request())
    assert identity.kind is CallerKind.MASTER


def test_dashboard_key_resolves(setup: Setup) -> None:
    identity = setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), config_request())
    assert identity == DASHBOARD_IDENTITY
    assert setup.keys.asked == [DASH_KEY]


def test_open_rule_admits_anonymous_callers(setup: Setup) -> None:
    assert setup.guard.admit(OPEN, creds(), config_request()) is ANONYMOUS


@pytest.mark.parametrize(
    ("authorization", "api_key"),
    [
        ("", ""),  # nothing at all
        ("PSK wrong-psk", ""),
        (f"PSK {PSK}x", ""),
        (f"PSK {PSK[:-1]}", ""),
        (f"Basic {PSK}", ""),  # right secret, unknown scheme
        (f"Bearer {PSK}", ""),  # PSK is not a bearer token
        (f"PSK {MASTER}", ""),  # master key is not a PSK
        ("Bearer wrong-master", ""),
        (PSK, ""),  # no scheme
        ("PSK", ""),
        ("PSK ", ""),
        ("", "wrong-master"),
        ("", PSK),  # PSK is not an x-api-key
        ("", UNKNOWN_KEY),  # well-formed, not registered
        ("", DASH_KEY.lower()),  # malformed variations of a real key
        ("", DASH_KEY[:-1]),
        ("", f"Bearer {MASTER}"),
        (f"Bearer {DASH_KEY}", ""),  # dashboard keys travel as x-api-key only
    ],
)
def test_wrong_credentials_are_unauthenticated_with_one_message(
    setup: Setup, authorization: str, api_key: str
) -> None:
    rule = AccessRule(
        frozenset(
            {
                options_pb2.CREDENTIAL_PSK,
                options_pb2.CREDENTIAL_DASHBOARD_KEY,
                options_pb2.CREDENTIAL_MASTER_KEY,
            }
        )
    )
    with pytest.raises(Unauthenticated) as caught:
        setup.guard.admit(rule, creds(authorization, api_key), config_request())
    assert str(caught.value) == UNAUTHENTICATED_MESSAGE
    assert caught.value.message == UNAUTHENTICATED_MESSAGE
    for secret in (PSK, MASTER, DASH_KEY, UNKNOWN_KEY):
        assert secret not in str(caught.value)
    assert setup.guard.counters.auth_failures == 1


def test_resolver_is_asked_only_for_well_formed_keys(setup: Setup) -> None:
    for api_key in ("short", "wfe_bad!", DASH_KEY + "X", UNKNOWN_KEY):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(
                SCOPED, creds(api_key=api_key, peer=f"ipv4:10.1.0.{len(api_key)}:1"), config_request()
            )
    assert setup.keys.asked == [UNKNOWN_KEY]


def test_wrong_credential_on_an_open_rule_is_still_refused(setup: Setup) -> None:
    with pytest.raises(Unauthenticated):
        setup.guard.admit(OPEN, creds("PSK nope"), config_request())


def test_unconfigured_psk_accepts_nothing() -> None:
    setup = make_setup(psk="", master="")
    for authorization in ("PSK ", "PSK", "Bearer ", "PSK  "):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(
                AccessRule(frozenset({options_pb2.CREDENTIAL_PSK, options_pb2.CREDENTIAL_MASTER_KEY})),
                creds(authorization, peer=f"ipv4:10.2.0.{len(authorization)}:1"),
                config_request(),
            )


def test_provider_signature_is_checked_by_the_verifier() -> None:
    setup = make_setup(provider_ok=True)
    request = registry_pb2.RegisterDashboardRequest(agency_id="raw")
    assert setup.guard.admit(PROVIDER_ONLY, creds(), request).kind is CallerKind.PROVIDER
    assert setup.provider_calls == [request]


def test_bad_provider_signature_is_unauthenticated() -> None:
    setup = make_setup(provider_ok=False)
    with pytest.raises(Unauthenticated) as caught:
        setup.guard.admit(PROVIDER_ONLY, creds(), config_request())
    assert str(caught.value) == UNAUTHENTICATED_MESSAGE
    assert setup.guard.counters.auth_failures == 1


def test_provider_rule_without_verifier_is_unauthenticated(setup: Setup) -> None:
    with pytest.raises(Unauthenticated):
        setup.guard.admit(PROVIDER_ONLY, creds(), config_request())


# --- credential rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "authorization", "api_key"),
    [
        (MASTER_ONLY, f"PSK {PSK}", ""),  # PSK on an admin RPC
        (PSK_ONLY, f"Bearer {MASTER}", ""),  # master on a PSK-only RPC
        (PSK_ONLY, "", MASTER),
        (PSK_ONLY, "", DASH_KEY),  # dashboard key on registration
        (MASTER_ONLY, "", DASH_KEY),
        (PROVIDER_ONLY, f"PSK {PSK}", ""),
    ],
)
def test_valid_but_disallowed_credential_is_permission_denied(
    setup: Setup, rule: AccessRule, authorization: str, api_key: str
) -> None:
    with pytest.raises(PermissionDenied) as caught:
        setup.guard.admit(rule, creds(authorization, api_key), config_request())
    assert caught.value.reason == "CREDENTIAL_NOT_ALLOWED"
    assert setup.guard.counters.auth_failures == 0


def test_anonymous_on_protected_rule_is_unauthenticated_not_denied(setup: Setup) -> None:
    with pytest.raises(Unauthenticated):
        setup.guard.admit(PSK_ONLY, creds(), config_request())


def test_suspended_dashboard_is_permission_denied(setup: Setup) -> None:
    with pytest.raises(PermissionDenied) as caught:
        setup.guard.admit(SCOPED, creds(api_key=SUSPENDED_KEY), config_request())
    assert caught.value.reason == "DASHBOARD_SUSPENDED"
    assert setup.guard.counters.auth_failures == 0


def test_contract_rules_apply(setup: Setup) -> None:
    registry = next(s for s in SERVICES if s.name == "RegistryService")
    register = rule_of(registry, "RegisterDashboard")
    get_config = rule_of(registry, "GetDashboardConfig")
    assert register is not None and get_config is not None
    with pytest.raises(PermissionDenied):
        setup.guard.admit(register, creds(api_key=DASH_KEY), registry_pb2.RegisterDashboardRequest())
    request = config_request()
    assert setup.guard.admit(get_config, creds(api_key=DASH_KEY), request).kind is CallerKind.DASHBOARD
    assert request.agency_id == "acme"


# --- agency scoping -------------------------------------------------------------------------


def test_empty_agency_field_is_filled_with_own_agency(setup: Setup) -> None:
    request = config_request()
    setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), request)
    assert request.agency_id == "acme"


def test_own_agency_is_accepted_unchanged(setup: Setup) -> None:
    request = config_request("acme")
    setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), request)
    assert request.agency_id == "acme"


@pytest.mark.parametrize("other", ["other", "ACME", "acme ", "acme2"])
def test_other_agency_is_permission_denied(setup: Setup, other: str) -> None:
    request = config_request(other)
    with pytest.raises(PermissionDenied) as caught:
        setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), request)
    assert caught.value.reason == "AGENCY_MISMATCH"
    assert request.agency_id == other


def test_scoping_follows_a_dotted_field_path(setup: Setup) -> None:
    rule = AccessRule(frozenset({options_pb2.CREDENTIAL_DASHBOARD_KEY}), "config.agency_id")
    message = registry_pb2.GetDashboardConfigResponse()
    setup.guard.admit(rule, creds(api_key=DASH_KEY), message)
    assert message.config.agency_id == "acme"
    assert message.HasField("config")
    message = registry_pb2.GetDashboardConfigResponse(config=registry_pb2.DashboardConfig(agency_id="other"))
    with pytest.raises(PermissionDenied):
        setup.guard.admit(rule, creds(api_key=DASH_KEY), message)


@pytest.mark.parametrize("agency", ["", "any-agency"])
@pytest.mark.parametrize(("authorization", "api_key"), [(f"PSK {PSK}", ""), ("", MASTER)])
def test_psk_and_master_are_not_scoped(setup: Setup, agency: str, authorization: str, api_key: str) -> None:
    request = config_request(agency)
    setup.guard.admit(SCOPED, creds(authorization, api_key), request)
    assert request.agency_id == agency


def test_rule_without_agency_field_leaves_request_alone(setup: Setup) -> None:
    rule = AccessRule(frozenset({options_pb2.CREDENTIAL_DASHBOARD_KEY}))
    request = config_request("other")
    setup.guard.admit(rule, creds(api_key=DASH_KEY), request)
    assert request.agency_id == "other"


# --- rate limits ----------------------------------------------------------------------------


def test_rate_limit_is_resource_exhausted_with_retry_after() -> None:
    setup = make_setup(rate=0.25, burst=2)
    for _ in range(2):
        setup.guard.admit(MASTER_ONLY, creds(api_key=MASTER), config_request())
    with pytest.raises(ResourceExhausted) as caught:
        setup.guard.admit(MASTER_ONLY, creds(api_key=MASTER), config_request())
    error = caught.value
    assert error.retry_after_seconds == 4  # one token at 0.25/s
    assert error.limit == 2
    assert error.window_seconds == pytest.approx(8.0)
    assert setup.guard.counters.rate_limit_rejections == 1
    setup.clock.advance(4.0)
    assert setup.guard.admit(MASTER_ONLY, creds(api_key=MASTER), config_request()).kind is CallerKind.MASTER


def test_master_bucket_is_shared_by_both_ways_of_sending_the_key() -> None:
    setup = make_setup(rate=1.0, burst=1)
    setup.guard.admit(MASTER_ONLY, creds(api_key=MASTER), config_request())
    with pytest.raises(ResourceExhausted):
        setup.guard.admit(MASTER_ONLY, creds(f"Bearer {MASTER}", peer=OTHER_PEER), config_request())


def test_dashboard_override_limits_apply() -> None:
    setup = make_setup(rate=100.0, burst=100)
    for _ in range(2):
        setup.guard.admit(SCOPED, creds(api_key=LIMITED_KEY), config_request())
    with pytest.raises(ResourceExhausted) as caught:
        setup.guard.admit(SCOPED, creds(api_key=LIMITED_KEY), config_request())
    assert caught.value.retry_after_seconds == 2  # 0.5 per second
    assert caught.value.limit == 2
    # Another dashboard has its own bucket with the default limits.
    for _ in range(50):
        setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), config_request())


def test_psk_callers_are_limited_per_peer_host() -> None:
    setup = make_setup(rate=1.0, burst=1)
    setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}", peer="ipv4:10.0.0.1:1111"), config_request())
    # A new connection (port) from the same host shares the bucket...
    with pytest.raises(ResourceExhausted):
        setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}", peer="ipv4:10.0.0.1:2222"), config_request())
    # ...another host does not.
    setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}", peer="ipv4:10.0.0.9:1111"), config_request())
    assert setup.guard.counters.rate_limit_rejections == 1


def test_anonymous_callers_are_limited_per_peer_host() -> None:
    setup = make_setup(rate=1.0, burst=2)
    setup.guard.admit(OPEN, creds(), config_request())
    setup.guard.admit(OPEN, creds(), config_request())
    with pytest.raises(ResourceExhausted):
        setup.guard.admit(OPEN, creds(), config_request())
    setup.guard.admit(OPEN, creds(peer=OTHER_PEER), config_request())


def test_provider_calls_are_not_rate_limited() -> None:
    setup = make_setup(rate=1.0, burst=1, provider_ok=True)
    for _ in range(20):
        assert setup.guard.admit(PROVIDER_ONLY, creds(), config_request()).kind is CallerKind.PROVIDER
    assert setup.guard.counters.rate_limit_rejections == 0


def test_refused_calls_take_no_rate_limit_token() -> None:
    setup = make_setup(rate=1.0, burst=1)
    with pytest.raises(PermissionDenied):
        setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), config_request("other"))
    # The failed call did not spend the single token.
    setup.guard.admit(SCOPED, creds(api_key=DASH_KEY), config_request())


# --- failed-authentication throttling -------------------------------------------------------


def test_repeated_failures_throttle_the_peer_even_with_correct_credentials(setup: Setup) -> None:
    for port in range(5000, 5003):  # new connections from one host
        with pytest.raises(Unauthenticated):
            setup.guard.admit(PSK_ONLY, creds("PSK guess", peer=f"ipv4:10.0.0.1:{port}"), config_request())
    assert setup.guard.counters.auth_failures == 3
    with pytest.raises(ResourceExhausted) as caught:
        setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request())
    assert caught.value.retry_after_seconds == 10  # one failure allowance at 0.1/s
    assert setup.guard.counters.rate_limit_rejections == 1
    # Throttled calls are not authenticated at all, so they are not counted as failures.
    assert setup.guard.counters.auth_failures == 3


def test_throttle_does_not_touch_other_peers(setup: Setup) -> None:
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(PSK_ONLY, creds("PSK guess"), config_request())
    assert setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}", peer=OTHER_PEER), config_request()).kind is (
        CallerKind.PSK
    )


def test_throttle_lifts_with_time(setup: Setup) -> None:
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(PSK_ONLY, creds("PSK guess"), config_request())
    setup.clock.advance(9.9)
    with pytest.raises(ResourceExhausted):
        setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request())
    setup.clock.advance(0.1)
    assert setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request()).kind is CallerKind.PSK


def test_failures_below_the_burst_do_not_throttle(setup: Setup) -> None:
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(PSK_ONLY, creds("PSK guess"), config_request())
    assert setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request()).kind is CallerKind.PSK


def test_permission_denied_does_not_count_as_failed_auth(setup: Setup) -> None:
    for _ in range(10):
        with pytest.raises(PermissionDenied):
            setup.guard.admit(MASTER_ONLY, creds(f"PSK {PSK}"), config_request())
    assert setup.guard.counters.auth_failures == 0
    assert setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request()).kind is CallerKind.PSK


def test_counters_start_at_zero_and_count_each_event(setup: Setup) -> None:
    counters = setup.guard.counters
    assert (counters.auth_failures, counters.rate_limit_rejections) == (0, 0)
    setup.guard.admit(PSK_ONLY, creds(f"PSK {PSK}"), config_request())
    assert (counters.auth_failures, counters.rate_limit_rejections) == (0, 0)
    for i in range(5):
        with pytest.raises(Unauthenticated):
            setup.guard.admit(PSK_ONLY, creds("PSK x", peer=f"ipv4:10.9.9.{i}:1"), config_request())
    assert counters.auth_failures == 5
    assert counters.rate_limit_rejections == 0
    assert "_lock" not in repr(counters)
