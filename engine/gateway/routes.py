"""The routing table, derived from the google.api.http rules of the service descriptors.

Nothing here knows the engine's services: any descriptor with HttpRule options works.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from engine.gateway.template import PathTemplate, TemplateError


class RouteConflictError(Exception):
    """Two rules would serve the same method and path; raised at start-up."""


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    #: HTTP method in upper case (GET, POST, ...; custom kinds as declared).
    http_method: str
    template: PathTemplate
    rpc: MethodDescriptor
    #: "" (no body), "*" (the whole request message) or a top-level request field name.
    body: str
    #: "" (the whole response message) or a top-level response field name.
    response_body: str

    @property
    def grpc_path(self) -> str:
        """`/package.Service/Method`."""
        return f"/{self.rpc.containing_service.full_name}/{self.rpc.name}"


def _bindings_of(rule: http_pb2.HttpRule) -> Iterable[tuple[str, str, http_pb2.HttpRule]]:
    """(HTTP method, path template, rule) for a rule and each of its additional bindings."""
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        yield rule.custom.kind.upper(), rule.custom.path, rule
    elif kind is not None:
        yield kind.upper(), getattr(rule, kind), rule
    for extra in rule.additional_bindings:
        # Additional bindings may not nest further (http.proto), so one level suffices.
        extra_kind = extra.WhichOneof("pattern")
        if extra_kind == "custom":
            yield extra.custom.kind.upper(), extra.custom.path, extra
        elif extra_kind is not None:
            yield extra_kind.upper(), getattr(extra, extra_kind), extra


def routes_of(services: Iterable[ServiceDescriptor]) -> list[Route]:
    """Every HTTP binding of every RPC of `services` that carries a google.api.http rule."""
    routes: list[Route] = []
    for service in services:
        for rpc in service.methods:
            options = rpc.GetOptions()
            if not options.HasExtension(annotations_pb2.http):
                continue
            rule = options.Extensions[annotations_pb2.http]
            for http_method, path, binding in _bindings_of(rule):
                try:
                    template = PathTemplate.parse(path)
                except TemplateError as error:
                    raise RouteConflictError(
                        f"{rpc.full_name}: bad path template {path!r}: {error}"
                    ) from None
                routes.append(Route(http_method, template, rpc, binding.body, binding.response_body))
    return routes


@dataclass(frozen=True)
class RouteMatch:
    """A route chosen for a request, with the path variables it bound."""

    route: Route
    bindings: dict[str, str]


class NoRoute(Exception):
    """No route serves the path (allowed empty), or none with this method (allowed non-empty)."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__("no route")
        self.allowed = allowed


class Router:
    """Finds the route of a request; the most specific template wins where several match."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: r.template.specificity, reverse=True)
        seen: dict[tuple[str, tuple[tuple[str, ...], str]], Route] = {}
        for route in self.routes:
            key = (route.http_method, route.template.shape())
            if key in seen:
                other = seen[key]
                raise RouteConflictError(
                    f"{route.http_method} {route.template.text} ({route.rpc.full_name}) conflicts with "
                    f"{other.http_method} {other.template.text} ({other.rpc.full_name})"
                )
            seen[key] = route

    def match(self, http_method: str, raw_path: str) -> RouteMatch:
        """The route for `http_method` and the percent-encoded `raw_path`; raise NoRoute otherwise."""
        allowed: list[str] = []
        for route in self.routes:
            bindings = route.template.match(raw_path)
            if bindings is None:
                continue
            if route.http_method == http_method:
                return RouteMatch(route, bindings)
            if route.http_method not in allowed:
                allowed.append(route.http_method)
        raise NoRoute(tuple(allowed))
