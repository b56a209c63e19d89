"""The gateway's static files (the admin page at /admin): exact paths, GET/HEAD only, security headers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from engine.admin.ui import admin_assets
from engine.gateway.app import Gateway, OpsEndpoints
from engine.gateway.routes import routes_of
from engine.rpc.server import SERVICES
from tests.support.live import LiveEngine

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
ADMIN_FILES = {
    "/admin": "text/html; charset=utf-8",
    "/admin/": "text/html; charset=utf-8",
    "/admin/index.html": "text/html; charset=utf-8",
    "/admin/app.js": "text/javascript; charset=utf-8",
    "/admin/app.css": "text/css; charset=utf-8",
    "/admin/favicon.svg": "image/svg+xml",
}


# -- the gateway alone, as an ASGI app (no server, no upstream) -------------------------------------


async def _ready() -> bool:
    return True


def gateway(static: dict[str, tuple[bytes, str]] | None) -> Gateway:
    ops = OpsEndpoints(ready=_ready, metrics=None, openapi_json=b"{}")
    return Gateway("127.0.0.1:1", routes_of(SERVICES), ops, gateway_token="t", static=static)


def call(
    app: Gateway, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request through the ASGI app: (status, headers, body)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path.split("?")[0],
        "raw_path": path.split("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 40000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body


STATIC = {
    "/page": (b"<!doctype html><p>hi</p>", "text/html; charset=utf-8"),
    "/page.js": (b"1;", "text/javascript"),
}


def test_static_get_serves_the_exact_bytes_with_security_headers() -> None:
    status, headers, body = call(gateway(STATIC), "GET", "/page")
    assert status == 200
    assert body == b"<!doctype html><p>hi</p>"
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(body))
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert headers["x-request-id"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])


def test_head_has_the_headers_and_no_body() -> None:
    app = gateway(STATIC)
    _, got, _ = call(app, "GET", "/page.js")
    status, headers, body = call(app, "HEAD", "/page.js")
    assert status == 200
    assert body == b""
    assert headers["content-length"] == "2"
    assert headers["etag"] == got["etag"]
    assert headers["content-security-policy"] == CSP


def test_if_none_match_answers_304_without_body() -> None:
    app = gateway(STATIC)
    _, headers, _ = call(app, "GET", "/page")
    status, again, body = call(app, "GET", "/page", {"If-None-Match": f'"other", {headers["etag"]}'})
    assert status == 304
    assert body == b""
    assert again["etag"] == headers["etag"]
    assert again["cache-control"] == "no-cache"
    changed, _, _ = call(app, "GET", "/page", {"If-None-Match": '"stale"'})
    assert changed == 200


def test_static_paths_are_exact_and_ignore_the_query_string() -> None:
    app = gateway(STATIC)
    assert call(app, "GET", "/page?x=1")[0] == 200
    for path in ("/page/", "/PAGE", "/page.js/", "/pag"):
        status, headers, body = call(app, "GET", path)
        assert status == 404, path
        assert json.loads(body)["message"] == "no such path"
        assert "content-security-policy" not in headers


def test_other_methods_on_a_static_path_are_405() -> None:
    status, headers, body = call(gateway(STATIC), "POST", "/page")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"
    assert json.loads(body)["code"] == 12


def test_without_static_files_nothing_is_served() -> None:
    assert call(gateway(None), "GET", "/page")[0] == 404


def test_ops_endpoints_are_not_shadowed_by_static_files() -> None:
    status, headers, body = call(gateway({"/healthz": (b"static", "text/plain")}), "GET", "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}
    assert "content-security-policy" not in headers


# -- the admin page's files --------------------------------------------------------------------


def test_admin_assets_are_the_package_files() -> None:
    assets = admin_assets()
    assert {path: kind for path, (_, kind) in assets.items()} == ADMIN_FILES
    assert assets["/admin"] == assets["/admin/"] == assets["/admin/index.html"]
    for body, _ in assets.values():
        assert body


def test_admin_page_needs_nothing_the_csp_forbids() -> None:
    """No inline script or style, no external origin, no HTML built from strings in the script."""
    assets = admin_assets()
    html = assets["/admin"][0].decode()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="module" src="/admin/app.js">']
    assert re.search(r"<script\b[^>]*>\s*[^<\s]", html) is None  # no inline script
    assert " style=" not in html and "<style" not in html
    assert re.search(r"<[^>]*\son\w+\s*=", html) is None  # no inline event handlers
    for body, _ in assets.values():
        text = body.decode()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    script = assets["/admin/app.js"][0].decode()
    for forbidden in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert forbidden not in script, forbidden
    assert "localStorage" not in script  # the key lives in sessionStorage only


# -- served by a live engine ---------------------------------------------------------------------


@pytest.fixture
def http(start_engine: Callable[..., LiveEngine]) -> Iterator[httpx.Client]:
    live = start_engine("sqlite", http=True)
    with httpx.Client(base_url=live.base_url, timeout=10) as client:
        yield client


def test_live_engine_serves_the_admin_page(http: httpx.Client) -> None:
    for path, kind in ADMIN_FILES.items():
        response = http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == kind
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (path, name)
    assert "<title>Workflow Engine · Admin</title>" in http.get("/admin").text
    head = http.head("/admin/app.js")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(http.get("/admin/app.js").content)


def test_live_engine_api_is_unchanged_beside_the_page(http: httpx.Client) -> None:
    assert http.get("/admin/nothing-here").status_code == 404
    assert http.post("/admin", json={}).status_code == 405
    response = http.get("/api/v1/admin/health")
    assert response.status_code == 401
    assert "content-security-policy" not in response.headers
