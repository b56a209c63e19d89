"""The engine admins' web page: static files served by the REST gateway at /admin.

Plain HTML, CSS and JavaScript (no build step); the page talks only to the public REST API.
"""

from __future__ import annotations

from importlib import resources

#: File name -> content type, in the order the page loads them.
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PREFIX = "/admin"


def admin_assets() -> dict[str, tuple[bytes, str]]:
    """URL path -> (body, content type) of every file of the admin page; /admin and /admin/ are the page."""
    package = resources.files(__name__)
    assets = {
        f"{PREFIX}/{name}": (package.joinpath(name).read_bytes(), kind) for name, kind in _FILES.items()
    }
    index = assets[f"{PREFIX}/index.html"]
    assets[PREFIX] = index
    assets[f"{PREFIX}/"] = index
    return assets
