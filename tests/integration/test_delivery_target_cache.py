"""The registry's cached delivery targets: every write through the registry shows at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from engine.registry.models import DashboardRegistration
from engine.registry.service import SECRET_OVERLAP, ConfigChanges
from engine.store.base import utcnow
from tests.support.constants import WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.rpc import register

NEW_SECRET = "whsec-new-0123456789abcdefghijklmnopqrstuvwx"


def test_a_target_is_read_once_then_served_from_the_cache(live: LiveEngine) -> None:
    register(live.channel, "agency-a", dashboard_url="https://a.example.com/hooks")
    registry = live.engine.registry
    target = registry.delivery_target("agency-a")
    assert target is not None and target.secrets == (WEBHOOK_SECRET,) and target.active
    # A change behind the registry's back shows only once it is forgotten.
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == "agency-a")
            .values(dashboard_url="https://b.example.com/hooks")
        )
    assert registry.delivery_target("agency-a") is target
    registry.forget("agency-a")
    changed = registry.delivery_target("agency-a")
    assert changed is not None and changed.url == "https://b.example.com/hooks"
    assert registry.delivery_target("agency-b") is None


def test_url_and_secret_changes_and_status_changes_show_at_once(live: LiveEngine) -> None:
    register(live.channel, "agency-a", dashboard_url="https://a.example.com/hooks")
    registry = live.engine.registry
    assert registry.delivery_target("agency-a") is not None

    registry.update_config("agency-a", ConfigChanges(dashboard_url="https://c.example.com/hooks"))
    target = registry.delivery_target("agency-a")
    assert target is not None and target.url == "https://c.example.com/hooks"

    registry.update_config("agency-a", ConfigChanges(webhook_secret=NEW_SECRET))
    target = registry.delivery_target("agency-a")
    assert target is not None and target.secrets == (NEW_SECRET, WEBHOOK_SECRET)

    registry.suspend("agency-a", "testing", actor="admin")
    target = registry.delivery_target("agency-a")
    assert target is not None and not target.active
    registry.activate("agency-a", actor="admin")
    target = registry.delivery_target("agency-a")
    assert target is not None and target.active


def test_the_previous_secret_is_dropped_when_its_overlap_ends(live: LiveEngine) -> None:
    register(live.channel, "agency-a", dashboard_url="https://a.example.com/hooks")
    registry = live.engine.registry
    registry.update_config("agency-a", ConfigChanges(webhook_secret=NEW_SECRET))
    target = registry.delivery_target("agency-a")
    assert target is not None and len(target.secrets) == 2

    later = utcnow() + SECRET_OVERLAP + timedelta(seconds=1)
    registry._clock = lambda: later
    target = registry.delivery_target("agency-a")
    assert target is not None and target.secrets == (NEW_SECRET,)
