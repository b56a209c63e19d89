"""The admin page at /admin in a real browser (Debian's Chromium driven by Playwright).

Each test starts a live engine with its REST gateway, drives the page the way an admin
would (by labels and button names, so the page stays usable without a mouse), and checks
the effect through the public REST API. Every page visited must log no console error, no
page error and no Content-Security-Policy violation, and must never open a JavaScript dialog.

Screenshots go to test-artifacts/admin/ (git-ignored); docs/images/admin-dashboards.png (the
README's picture) is written when missing, or again with UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.constants import MASTER_KEY
from tests.support.live import LiveEngine
from tests.support.rpc import register

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "admin"
README_IMAGE = ROOT / "docs" / "images" / "admin-dashboards.png"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Records CSP violations the page sees (they are also logged as console errors).
CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (never `playwright install`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@dataclass
class Admin:
    """One browser tab on the admin page, recording everything that must not happen."""

    page: Any
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    #: Console errors a test expects (e.g. the 401 of a wrong key), by substring.
    allowed: list[str] = field(default_factory=list)

    def open(self, hash_: str = "") -> Any:
        response = self.page.goto(f"{self.base_url}/admin{hash_}")
        assert response is not None and response.status == 200
        return response

    def sign_in(self, key: str = MASTER_KEY) -> None:
        self.page.get_by_label("Master key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def nav(self, name: str, heading: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(self.page.get_by_role("heading", level=1, name=heading)).to_be_visible()
        self.settle()

    def settle(self) -> None:
        """Wait until nothing is loading (QR codes, attempts) any more."""
        expect(self.page.locator(".loading, .spinner")).to_have_count(0)
        expect(self.page.get_by_text("Loading QR code…")).to_have_count(0)

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        # From the top (the sticky header), without the passing notifications.
        self.page.evaluate(
            "window.scrollTo(0, 0); document.querySelectorAll('.toast').forEach((t) => t.remove())"
        )
        self.page.mouse.move(0, 0)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_clean(self) -> None:
        """No console error, page error, CSP violation or JavaScript dialog so far."""
        violations = self.page.evaluate("window.__cspViolations || []")
        errors = [e for e in self.console_errors if not any(a in e for a in self.allowed)]
        assert errors == [], errors
        assert self.page_errors == []
        assert violations == []
        assert self.dialogs == []

    def toast(self, text: str) -> None:
        expect(self.page.locator(".toast").filter(has_text=text)).to_be_visible()


@pytest.fixture
def admin_for(browser: Any) -> Iterator[Callable[[LiveEngine], Admin]]:
    contexts: list[Any] = []

    def make(live: LiveEngine) -> Admin:
        context = browser.new_context(
            viewport={"width": 1440, "height": 900}, locale="en-US", timezone_id="UTC"
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.add_init_script(CSP_PROBE)
        admin = Admin(page, live.base_url)
        page.on("console", lambda m: m.type == "error" and admin.console_errors.append(m.text))
        page.on("pageerror", lambda e: admin.page_errors.append(str(e)))

        def on_dialog(dialog: Any) -> None:
            admin.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return admin

    yield make
    for context in contexts:
        context.close()


# -- data -------------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver_url() -> Iterator[str]:
    """A dashboard webhook endpoint on loopback that accepts everything."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


def rest(live: LiveEngine, key: str = MASTER_KEY) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, headers={"X-API-Key": key}, timeout=10)


def start_session(live: LiveEngine, key: str, tenant: str, name: str, *, start: bool = True) -> str:
    with rest(live, key) as client:
        created = client.post("/api/v1/sessions", json={"tenantId": tenant, "name": name})
        assert created.status_code == 200, created.text
        session_id = str(created.json()["session"]["sessionId"])
        if start:
            started = client.post(f"/api/v1/sessions/{session_id}/start", json={})
            assert started.status_code == 200, started.text
    return session_id


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def no_pending_deliveries(live: LiveEngine) -> bool:
    with rest(live) as client:
        body = client.get("/api/v1/admin/deliveries", params={"status": "DELIVERY_STATUS_PENDING"}).json()
    return not body["deliveries"]


@dataclass
class Seeded:
    live: LiveEngine
    acme_key: str
    globex_key: str


def seed(live: LiveEngine, receiver_url: str) -> Seeded:
    """Two dashboards: Acme's webhooks arrive, Globex's fail (nothing listens on port 9)."""
    acme = register(live.channel, "agency_acme", dashboard_name="Acme Clinics", dashboard_url=receiver_url)
    globex = register(
        live.channel,
        "agency_globex",
        dashboard_name="Globex Dental",
        dashboard_url="http://127.0.0.1:9/hooks",
    )
    start_session(live, acme.api_key, "tenant_downtown", "Front desk")
    start_session(live, acme.api_key, "tenant_uptown", "Bookings")
    start_session(live, globex.api_key, "tenant_main", "Reception", start=False)
    with rest(live, globex.api_key) as client:
        assert client.post("/api/v1/webhooks/test", json={"note": "hello"}).status_code == 200
    wait_for(lambda: no_pending_deliveries(live), "deliveries to succeed or fail")
    return Seeded(live, acme.api_key, globex.api_key)


def engine_with_data(start_engine: Callable[..., LiveEngine], receiver_url: str) -> Seeded:
    # No retries: a delivery that fails once is FAILED at once.
    return seed(start_engine("sqlite", http=True, webhook_retry_schedule=()), receiver_url)


# -- tests ------------------------------------------------------------------------------------------


def test_sign_in_shows_health_and_both_dashboards(
    start_engine: Callable[..., LiveEngine], receiver_url: str, admin_for: Callable[[LiveEngine], Admin]
) -> None:
    data = engine_with_data(start_engine, receiver_url)
    admin = admin_for(data.live)
    response = admin.open()

    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    page = admin.page
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    admin.shot("sign-in", full_page=False)
    admin.sign_in()

    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    admin.settle()
    assert page.evaluate("sessionStorage.length") == 1
    assert MASTER_KEY not in page.url
    for tile in ("Database", "Uptime", "Version", "Providers", "Outbox backlog", "Delivery success"):
        expect(page.get_by_role("group", name=tile)).to_be_visible()
    expect(page.get_by_role("group", name="Database")).to_contain_text("OK")
    expect(page.get_by_role("group", name="Providers")).to_contain_text("sandbox")
    expect(page.get_by_text("Acme Clinics", exact=True)).to_be_visible()
    expect(page.get_by_text("Globex Dental", exact=True)).to_be_visible()
    overview = admin.shot("overview")
    if not README_IMAGE.exists() or os.environ.get("UPDATE_SCREENSHOTS"):
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(overview, README_IMAGE)
    admin.assert_clean()

    admin.nav("Dashboards", "Dashboards")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator('tr[data-row="agency_acme"]')).to_contain_text("working")
    expect(page.locator('tr[data-row="agency_globex"]')).to_contain_text("failed")
    admin.shot("dashboards")
    admin.assert_clean()

    # Search and status filter (kept in the URL), then clear.
    page.get_by_label("Search").fill("globex")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Globex Dental")
    assert "query=globex" in page.url
    page.get_by_label("Search").fill("")
    page.get_by_label("Status").select_option(label="Suspended")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()
    page.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(2)
    admin.assert_clean()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    admin.assert_clean()


def test_wrong_master_key_is_refused_with_a_clear_error(
    start_engine: Callable[..., LiveEngine], admin_for: Callable[[LiveEngine], Admin]
) -> None:
    live = start_engine("sqlite", http=True)
    dashboard_key = register(live.channel, "agency_acme").api_key
    admin = admin_for(live)
    # The browser logs the refused requests themselves; nothing else may be logged.
    admin.allowed = ["status of 401", "status of 403"]
    admin.open("#/dashboards")
    page = admin.page

    admin.sign_in("not-the-master-key")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("did not accept this key (401 Unauthorized)")
    expect(page.get_by_label("Master key")).to_be_focused()
    assert page.evaluate("sessionStorage.length") == 0
    admin.shot("sign-in-wrong-key", full_page=False)

    admin.sign_in(dashboard_key)
    expect(error).to_contain_text("not the engine's master key (403 Forbidden)")
    assert page.evaluate("sessionStorage.length") == 0
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()

    # The right key then opens the page that was asked for.
    admin.sign_in()
    expect(page.get_by_role("heading", level=1, name="Dashboards")).to_be_visible()
    admin.assert_clean()
    assert len(admin.console_errors) == 2


def test_suspend_and_activate_through_the_page(
    start_engine: Callable[..., LiveEngine], admin_for: Callable[[LiveEngine], Admin]
) -> None:
    live = start_engine("sqlite", http=True)
    acme_key = register(live.channel, "agency_acme", dashboard_name="Acme Clinics").api_key
    register(live.channel, "agency_globex", dashboard_name="Globex Dental")
    admin = admin_for(live)
    admin.open("#/dashboards")
    admin.sign_in()
    page = admin.page
    acme_row = page.locator('tr[data-row="agency_acme"]')
    expect(acme_row).to_contain_text("Active")

    # The dialog closes with Escape, changes nothing, and gives the focus back.
    suspend = page.get_by_role("button", name="Suspend Acme Clinics", exact=True)
    suspend.click()
    dialog = page.get_by_role("dialog", name="Suspend dashboard?")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Reason")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(suspend).to_be_focused()
    expect(acme_row).to_contain_text("Active")

    # A reason is required; then suspend.
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Suspend dashboard").click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").fill("Spam reported by three tenants")
    admin.shot("suspend-dialog", full_page=False)
    dialog.get_by_role("button", name="Suspend dashboard").click()
    expect(dialog).to_be_hidden()
    admin.toast("Suspended Acme Clinics.")
    expect(acme_row).to_contain_text("Suspended")
    expect(page.get_by_role("button", name="Activate Acme Clinics", exact=True)).to_be_focused()
    expect(page.locator('tr[data-row="agency_globex"]')).to_contain_text("Active")

    with rest(live, acme_key) as client:
        refused = client.get("/api/v1/sessions")
    assert refused.status_code == 403
    assert [d.get("reason") for d in refused.json()["details"]] == ["DASHBOARD_SUSPENDED"]

    # The detail page shows why, and who did it.
    acme_row.get_by_role("link", name="agency_acme").click()
    expect(page.get_by_role("heading", level=1, name="Acme Clinics")).to_be_visible()
    history = page.get_by_role("region", name="Status history")
    expect(history).to_contain_text("Spam reported by three tenants")
    expect(history).to_contain_text("admin")
    admin.settle()
    admin.shot("dashboard-suspended")
    admin.assert_clean()

    page.get_by_role("button", name="Activate Acme Clinics", exact=True).click()
    dialog = page.get_by_role("dialog", name="Activate dashboard?")
    dialog.get_by_role("button", name="Activate dashboard").click()
    expect(dialog).to_be_hidden()
    admin.toast("Activated Acme Clinics.")
    expect(page.locator(".page-head")).to_contain_text("Active")
    expect(page.get_by_role("button", name="Suspend Acme Clinics", exact=True)).to_be_visible()

    with rest(live, acme_key) as client:
        assert client.get("/api/v1/sessions").status_code == 200
    admin.assert_clean()


def test_a_script_in_a_name_is_shown_as_text(
    start_engine: Callable[..., LiveEngine], admin_for: Callable[[LiveEngine], Admin]
) -> None:
    name = "<script>alert(1)</script>"
    live = start_engine("sqlite", http=True)
    key = register(live.channel, "agency_xss", dashboard_name=name).api_key
    start_session(live, key, "tenant_main", '<img src=x onerror="alert(2)"><b>bold</b>', start=False)
    admin = admin_for(live)
    admin.open()
    admin.sign_in()
    page = admin.page

    expect(page.get_by_text(name, exact=True)).to_be_visible()
    admin.nav("Dashboards", "Dashboards")
    expect(page.get_by_text(name, exact=True)).to_be_visible()
    page.get_by_role("link", name="agency_xss").click()
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    admin.settle()
    expect(page.get_by_text('<img src=x onerror="alert(2)"><b>bold</b>', exact=True)).to_be_visible()
    admin.nav("Sessions", "Sessions")
    expect(page.get_by_text('<img src=x onerror="alert(2)"><b>bold</b>', exact=True)).to_be_visible()

    assert page.locator("script").count() == 1  # app.js only
    assert page.locator("main img").count() == 0
    assert page.locator("b", has_text="bold").count() == 0
    admin.assert_clean()


def test_dashboard_detail_deliveries_and_recovery(
    start_engine: Callable[..., LiveEngine], receiver_url: str, admin_for: Callable[[LiveEngine], Admin]
) -> None:
    data = engine_with_data(start_engine, receiver_url)
    live = data.live
    admin = admin_for(live)
    admin.open("#/dashboards/agency_globex")
    admin.sign_in()
    page = admin.page
    expect(page.get_by_role("heading", level=1, name="Globex Dental")).to_be_visible()
    admin.settle()

    config = page.get_by_role("region", name="Configuration")
    expect(config).to_contain_text("http://127.0.0.1:9/hooks")
    expect(config).to_contain_text("ends in")
    keys = page.get_by_role("region", name="API keys")
    expect(keys).to_contain_text(data.globex_key[:8])
    expect(keys).not_to_contain_text(data.globex_key)
    expect(page.get_by_role("region", name="Sessions")).to_contain_text("Reception")

    # Edit the rate limit.
    page.get_by_label("Requests per second").fill("10")
    page.get_by_label("Burst").fill("20")
    page.get_by_role("button", name="Save rate limit").click()
    admin.toast("Rate limit set to 10 requests/s, burst 20.")
    with rest(live) as client:
        detail = client.get("/api/v1/admin/dashboards/agency_globex").json()["dashboard"]
    assert detail["rateLimit"] == {"requestsPerSecond": 10.0, "burst": 20}
    expect(page.get_by_label("Burst")).to_have_value("20")

    # Expand a failed delivery: its attempt, and the event.
    deliveries = page.get_by_role("region", name="Recent deliveries")
    row = deliveries.locator("tbody tr.row").filter(has_text="webhook.test")
    expect(row).to_contain_text("Failed")
    toggle = row.get_by_role("button", name="Attempts of")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    attempts = deliveries.locator("tr.detail-row:visible")
    expect(attempts).to_contain_text("No response")
    expect(attempts).to_contain_text("Event payload")
    admin.shot("dashboard-detail")
    admin.assert_clean()

    # Redeliver it: it fails again (nothing listens), one attempt more.
    delivery_id = row.get_attribute("data-row")
    assert delivery_id
    row.get_by_role("button", name=f"Redeliver {delivery_id}").click()
    admin.toast(f"Delivery {delivery_id} queued again.")

    def attempts_of(delivery: str) -> int:
        with rest(live) as client:
            body = client.get(f"/api/v1/webhooks/deliveries/{delivery}", params={"agencyId": "agency_globex"})
        found = body.json()["delivery"]
        return len(found["attempts"]) if found["status"] == "DELIVERY_STATUS_FAILED" else 0

    wait_for(lambda: attempts_of(delivery_id) == 2, "the redelivery to fail")

    # All failed deliveries of every dashboard; recover Globex's.
    admin.nav("Failed deliveries", "Failed deliveries")
    with rest(live) as client:
        failed = client.get("/api/v1/admin/deliveries", params={"status": "DELIVERY_STATUS_FAILED"}).json()
    assert {d["agencyId"] for d in failed["deliveries"]} == {"agency_globex"}
    expect(page.locator("tbody tr.row")).to_have_count(len(failed["deliveries"]))
    recover = page.get_by_role("region", name="Recover by dashboard")
    expect(recover).to_contain_text("agency_globex")
    expect(recover).not_to_contain_text("agency_acme")
    admin.shot("failed-deliveries")
    recover.get_by_role("button", name="Recover failed deliveries of agency_globex").click()
    dialog = page.get_by_role("dialog", name="Recover failed deliveries?")
    expect(dialog.get_by_label("Only deliveries created since (optional)")).to_be_focused()
    dialog.get_by_role("button", name="Recover deliveries").click()
    expect(dialog).to_be_hidden()
    count = len(failed["deliveries"])
    admin.toast(f"{count} failed deliver{'y' if count == 1 else 'ies'} of agency_globex queued again.")
    wait_for(lambda: no_pending_deliveries(live), "the recovered deliveries to fail again")
    admin.assert_clean()


def test_a_session_waiting_to_pair_shows_its_qr_code(
    start_engine: Callable[..., LiveEngine], admin_for: Callable[[LiveEngine], Admin]
) -> None:
    live = start_engine("sqlite", http=True, sandbox_pairing_seconds=60)
    key = register(live.channel, "agency_acme", dashboard_name="Acme Clinics").api_key
    session_id = start_session(live, key, "tenant_downtown", "Front desk")
    idle_id = start_session(live, key, "tenant_uptown", "Bookings", start=False)

    def status_of(session: str) -> str:
        with rest(live, key) as client:
            return str(client.get(f"/api/v1/sessions/{session}").json()["session"]["status"])

    wait_for(lambda: status_of(session_id) == "SESSION_STATUS_SCAN_QR_CODE", "the QR code")
    admin = admin_for(live)
    admin.open("#/sessions")
    admin.sign_in()
    page = admin.page
    expect(page.get_by_role("heading", level=1, name="Sessions")).to_be_visible()
    admin.settle()

    row = page.locator(f'tr[data-row="{session_id}"]')
    expect(row).to_contain_text("Scan QR code")
    qr = row.get_by_role("img", name="QR code to pair session Front desk")
    expect(qr).to_be_visible()
    assert qr.get_attribute("src").startswith("data:image/png;base64,")
    assert qr.evaluate("image => image.complete && image.naturalWidth") > 20
    assert page.locator(f'tr[data-row="{idle_id}"] img').count() == 0
    admin.shot("sessions")
    admin.assert_clean()

    # Filters: by status, then by tenant.
    page.get_by_label("Status").select_option(label="Stopped")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator(f'tr[data-row="{idle_id}"]')).to_be_visible()
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Tenant ID").fill("tenant_downtown")
    page.get_by_label("Provider").select_option("sandbox")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row).to_be_visible()
    admin.settle()

    # Stop it (no QR any more), then delete it.
    row.get_by_role("button", name="Stop session Front desk").click()
    page.get_by_role("dialog", name="Stop session?").get_by_role("button", name="Stop session").click()
    admin.toast("Stopped session Front desk.")
    expect(row).to_contain_text("Stopped")
    expect(row.get_by_role("img")).to_have_count(0)
    assert status_of(session_id) == "SESSION_STATUS_STOPPED"

    row.get_by_role("button", name="Delete session Front desk").click()
    page.get_by_role("dialog", name="Delete session?").get_by_role("button", name="Delete session").click()
    admin.toast("Deleted session Front desk.")
    expect(row).to_have_count(0)
    with rest(live, key) as client:
        assert client.get(f"/api/v1/sessions/{session_id}").status_code == 404
    admin.assert_clean()

    # An unknown agency is an error shown in place, with the filters still there to fix it.
    admin.allowed = ["status of 404"]
    page.get_by_label("Agency ID").fill("agency_nobody")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("not registered (404 Not found)")
    page.get_by_role("button", name="Clear").click()
    expect(page.locator(f'tr[data-row="{idle_id}"]')).to_be_visible()
    admin.assert_clean()


def test_dashboards_are_paginated(
    start_engine: Callable[..., LiveEngine], admin_for: Callable[[LiveEngine], Admin]
) -> None:
    live = start_engine("sqlite", http=True)
    for number in range(27):  # one page is 25
        register(live.channel, f"agency_{number:02d}", dashboard_name=f"Dashboard {number:02d}")
    admin = admin_for(live)
    admin.open("#/dashboards")
    admin.sign_in()
    page = admin.page
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(25)
    previous = page.get_by_role("button", name="Previous")
    following = page.get_by_role("button", name="Next")
    expect(previous).to_be_disabled()
    expect(page.get_by_text("Dashboards · page 1")).to_be_visible()

    following.focus()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("agency_25")
    expect(page.get_by_text("Dashboards · page 2")).to_be_visible()
    expect(following).to_be_disabled()
    expect(previous).to_be_focused()

    page.keyboard.press("Enter")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("agency_00")
    admin.assert_clean()
