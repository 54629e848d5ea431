"""Route templates of Starlette/FastAPI requests: what names a server span and sets ``http.route``.

Starlette leaves in the request's scope what it matched; :func:`route_template` reads the
template from there when the request ends, cheapest first:

1. ``scope["route"]``: FastAPI's API routes put themselves there (every version), and newer
   Starlette routers put every route they match there. An unmounted route's template is worked
   out once per route.
2. ``scope["endpoint"]``: every Starlette route puts its endpoint there when it matches (a
   ``Route`` its function, a ``Mount`` or ``Host`` its app), on every Starlette version and under
   FastAPI's router too, which sets no ``scope["route"]`` for the routes that are not its own
   (``/openapi.json``, ``/docs``, ``add_route``, mounts). :class:`RouteIndex` maps endpoints to
   templates from one walk of the app's route tree (mounts and hosts included), done on the first
   request that needs it and again when an endpoint is not found (a route added later). Only
   when several routes share one endpoint is the request's path matched, once, against a regex
   of theirs.

A request that matched no route has no template (a 404 is named by its method alone). A ``Mount``
of an app without routes of its own (``StaticFiles``) names its requests ``/static/{path}``; a
mount of a routed app in which nothing matched is a 404 like any other.

>>> from starlette.routing import Mount, Route
>>> def page(request): ...
>>> index = RouteIndex([Mount("/v1", routes=[Route("/pages/{pid}", page)])])
>>> index.template({"endpoint": page})
'/v1/pages/{pid}'
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from otelperf._runtime import guard as _internal

Scope = MutableMapping[str, Any]
RoutePrefix = Callable[[Any, Any, Scope], str]  # the middleware's: mount prefixes above a route

MAX_CACHED_ROUTES = 4096
MAX_INDEXED = 4096  # endpoints indexed per app; past that, later routes are not named
MAX_UNKNOWN = 256  # endpoints found in no route (each cost one walk); past that, no more walks
MAX_DEPTH = 8  # mounts within mounts

# One entry per route: (its endpoint, the route, its template below the app's root path, the regex
# of its full path there). Kept with the endpoint so that an id() is only trusted while its object
# is the same one.
Entry = tuple[Any, Any, "str | None", "str | None"]
_KEEPS_ROOT_PATH: bool | None = None  # Starlette >= 0.33: mounts leave scope["path"] whole
_NAMED_GROUP = re.compile(r"\(\?P<[^>]+>")


# Route templates of unmounted apps by id(route): (route, its FastAPI route context, the app's
# root path, the template). The route is kept alive by its entry, so its id stays its own.
_templates: dict[int, tuple[Any, Any, str, str | None]] = {}
# Endpoint indexes of routers whose app otelperf did not wrap (a hand-added middleware alone), by
# id(router).
_router_indexes: dict[int, tuple[Any, RouteIndex]] = {}
_MAX_ROUTER_INDEXES = 64


def route_template(req: Any, scope: Scope, route_prefix: RoutePrefix) -> str | None:
    """The template naming the request ``req`` (the middleware's bookkeeping: ``base_root_path``,
    ``route_root``), from what Starlette left in its ``scope``; None when no route matched."""
    route = scope.get("route")
    if route is None:
        if scope.get("endpoint") is None:
            return None  # no route matched: a 404 keeps no template
        return _endpoint_template(req, scope)  # a route FastAPI does not own, or older Starlette
    if isinstance(route, str):
        return route
    base = req.base_root_path
    if scope.get("root_path", "") != base:  # under a mount: its prefix is part of the template
        return _template_of(req, route, scope, route_prefix)
    fastapi_scope = scope.get("fastapi")
    context = fastapi_scope.get("effective_route_context") if type(fastapi_scope) is dict else None
    cached = _templates.get(id(route))
    if cached is not None and cached[0] is route and cached[1] is context and cached[2] == base:
        return cached[3]
    if is_mount_or_host(route):  # what it holds may have matched: not one template per route
        return _endpoint_template(req, scope)
    template = _template_of(req, route, scope, route_prefix)
    if len(_templates) < MAX_CACHED_ROUTES:
        _templates[id(route)] = (route, context, base, template)
    return template


def _template_of(req: Any, route: Any, scope: Scope, route_prefix: RoutePrefix) -> str | None:
    if is_mount_or_host(route):
        # Starlette's router set it, and the app it holds matched nothing or routed by itself.
        return _endpoint_template(req, scope)
    path = effective_path(scope) or getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    template: str = req.base_root_path.rstrip("/") + route_prefix(req, route, scope) + path
    return template if template.startswith("/") else "/" + template


def _endpoint_template(req: Any, scope: Scope) -> str | None:
    """The template of the route that put ``scope["endpoint"]`` there (step 2 above)."""
    if scope.get("endpoint") is None:
        return None  # no route matched: a 404 keeps no template
    root = req.route_root  # the middleware around the outermost Starlette app, if otelperf put it
    index: RouteIndex
    if getattr(root, "_owner", None) is not None:
        index = root._index
        if index is None:
            index = root._index = RouteIndex(root._owner)
    else:
        router = scope.get("router")
        if router is None:
            return None
        known = _router_indexes.get(id(router))
        if known is not None and known[0] is router:
            index = known[1]
        else:
            index = RouteIndex(router)
            if len(_router_indexes) < _MAX_ROUTER_INDEXES:
                _router_indexes[id(router)] = (router, index)
    try:
        tail = index.template(scope, req.base_root_path)
    except Exception as exc:  # a route tree it cannot read: the request is still timed and ended
        _internal.swallow("asgi.route_index", exc)
        return None
    if tail is None:
        return None
    base: str = req.base_root_path.rstrip("/")
    return base + tail if base else tail


def effective_path(scope: Mapping[str, Any]) -> str | None:
    """FastAPI >= 0.16x keeps an included router's full template (all prefixes) here."""
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, dict):
        return None
    path = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
    return path if isinstance(path, str) else None


def is_mount_or_host(route: Any) -> bool:
    """Routes that hand the request on: once matched, what they hold may match further."""
    routing = sys.modules.get("starlette.routing")
    return routing is not None and isinstance(route, (routing.Mount, routing.Host))


def find_prefix(routes: Any, target: Any, prefix: str, depth: int) -> str | None:
    """The mount prefixes (as templates) between ``routes`` and the route ``target``."""
    if depth > MAX_DEPTH:
        return None
    routing = sys.modules.get("starlette.routing")
    for candidate in routes:
        if candidate is target:
            return prefix
        if routing is None:
            continue
        if isinstance(candidate, routing.Mount):
            mount_path = candidate.path_format.removesuffix("/{path}")
            found = find_prefix(candidate.routes, target, prefix + mount_path, depth + 1)
        elif isinstance(candidate, routing.Host):
            found = find_prefix(candidate.routes, target, prefix, depth + 1)
        elif hasattr(candidate, "original_router"):
            # FastAPI >= 0.137 keeps an included router as a node (scope["fastapi"] carries its
            # prefixes; see effective_path): its routes are the ones put in scope["route"].
            found = find_prefix(getattr(candidate.original_router, "routes", ()), target, prefix, depth + 1)
        else:
            continue
        if found is not None:
            return found
    return None


class RouteIndex:
    """One app's route templates by endpoint, from a walk of its route tree.

    ``source`` is the app (or router, or a list of routes): its ``routes`` are read again at every
    walk, so routes added after the first request are found.
    """

    __slots__ = ("_by_endpoint", "_shared", "_size", "_source", "_unknown", "_walked", "walks")

    def __init__(self, source: Any) -> None:
        self._source = source
        self._by_endpoint: dict[int, list[Entry]] = {}
        # Endpoints behind several routes: one regex matching any of their paths, and the routes.
        self._shared: dict[int, tuple[re.Pattern[str] | None, list[Entry]]] = {}
        self._unknown: dict[int, Any] = {}  # endpoints the last walk did not find
        # The top-level routes list of the last walk and its length then: a route added to it
        # (app.add_route after the first request) may share an endpoint already indexed.
        self._walked: Any = ()
        self._size = -1
        self.walks = 0

    def template(self, scope: Mapping[str, Any], base: str = "") -> str | None:
        """The template of the route that put ``scope["endpoint"]`` there; None when none did.
        ``base``: the app's root path (as its outermost router saw it)."""
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return None
        entries = self._by_endpoint.get(id(endpoint))
        if entries is None or entries[0][0] is not endpoint or len(self._walked) != self._size:
            entries = self._after_walk(endpoint)
            if entries is None:
                return None
        if len(entries) == 1:
            return entries[0][2]
        # One endpoint, several routes (rare). Their regex comes from the same walk as the entries
        # (another thread may be between the two assignments of a walk): else they are matched.
        shared = self._shared.get(id(endpoint))
        return _matching(
            shared if shared is not None and shared[1] is entries else (None, entries), scope, base
        )

    def _after_walk(self, endpoint: Any) -> list[Entry] | None:
        key = id(endpoint)
        routes = self._source if isinstance(self._source, list) else getattr(self._source, "routes", ())
        unchanged = routes is self._walked and len(routes) == self._size
        if unchanged:
            entries = self._by_endpoint.get(key)
            if entries is not None and entries[0][0] is endpoint:
                return entries
            if self._unknown.get(key) is endpoint or len(self._unknown) >= MAX_UNKNOWN:
                return None  # walked since it was last asked for, and no route was added since
        by_endpoint: dict[int, list[Entry]] = {}
        routing = sys.modules.get("starlette.routing")
        if routing is not None:
            _walk(routing, list(routes), "", "", depth=0, into=by_endpoint)
        unknown = self._unknown if unchanged else {}
        entries = by_endpoint.get(key)
        if entries is None and len(unknown) < MAX_UNKNOWN:
            unknown[key] = endpoint
        shared = {k: (_either(group), group) for k, group in by_endpoint.items() if len(group) > 1}
        self._by_endpoint, self._shared, self._unknown = by_endpoint, shared, unknown
        self._walked, self._size = routes, len(routes)
        self.walks += 1
        return entries


def _walk(
    routing: Any, routes: Any, prefix: str, prefix_re: str | None, *, depth: int, into: dict[int, list[Entry]]
) -> None:
    """Index ``routes`` under the mount ``prefix`` (a template; ``prefix_re``: its regex, None
    when a route on the way has no ``^...$`` path regex)."""
    if depth > MAX_DEPTH:
        return
    for route in routes:
        if len(into) >= MAX_INDEXED:
            return
        path_re = _regex_body(route, prefix_re)
        if isinstance(route, routing.Mount):
            path_format: str = route.path_format  # "/static/{path}"
            # Its app as given, under any middleware of the mount: does it route by itself?
            routed = hasattr(getattr(route, "_base_app", route.app), "routes")
            _add(into, route.app, route, None if routed else prefix + path_format, path_re)
            if routed:
                inner_re = path_re.removesuffix("/(?:.*)") if path_re is not None else None
                inner = prefix + path_format.removesuffix("/{path}")
                _walk(routing, route.routes, inner, inner_re, depth=depth + 1, into=into)
        elif isinstance(route, routing.Host):
            _add(into, route.app, route, None, None)  # nothing inside it matched: no path template
            _walk(routing, route.routes, prefix, prefix_re, depth=depth + 1, into=into)  # no path of its own
        elif hasattr(route, "original_router"):
            # FastAPI >= 0.137 keeps an included router as a node: its routes, under its prefix.
            include = getattr(getattr(route, "include_context", None), "prefix", "")
            include = include if isinstance(include, str) else ""
            inner_routes = getattr(route.original_router, "routes", ())
            inner_re = None if include else prefix_re  # (a prefix may hold parameters: not matched here)
            _walk(routing, inner_routes, prefix + include, inner_re, depth=depth + 1, into=into)
        else:
            endpoint = getattr(route, "endpoint", None)
            template = getattr(route, "path_format", None)
            if endpoint is not None and isinstance(template, str):
                _add(into, endpoint, route, prefix + template, path_re)


def _regex_body(route: Any, prefix_re: str | None) -> str | None:
    """The regex of the path below the app's root path that reaches ``route``, groups unnamed
    (the same parameter name may appear in several routes)."""
    pattern = getattr(getattr(route, "path_regex", None), "pattern", None)
    if prefix_re is None or not isinstance(pattern, str):
        return None
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    return prefix_re + _NAMED_GROUP.sub("(?:", pattern[1:-1])


def _add(
    into: dict[int, list[Entry]], endpoint: Any, route: Any, template: str | None, path_re: str | None
) -> None:
    into.setdefault(id(endpoint), []).append((endpoint, route, template, path_re))


def _either(entries: list[Entry]) -> re.Pattern[str] | None:
    """One regex for the full paths of routes sharing an endpoint: which one matched is the name of
    its group (``r3``), so the request is matched once, not once per route."""
    parts = []
    for i, entry in enumerate(entries):
        if entry[3] is None:
            return None
        parts.append(f"(?P<r{i}>{entry[3]})")
    try:
        return re.compile("^(?:" + "|".join(parts) + ")$")
    except re.error:
        return None


def _keeps_root_path() -> bool:
    global _KEEPS_ROOT_PATH
    if _KEEPS_ROOT_PATH is None:
        _KEEPS_ROOT_PATH = hasattr(sys.modules.get("starlette._utils"), "get_route_path")
    return _KEEPS_ROOT_PATH


def _path_below(scope: Mapping[str, Any], base: str) -> str:
    """The request's path below the app's root path ``base``. Starlette >= 0.33 keeps the whole
    path in scope["path"]; older ones cut each mount's part out of it into scope["root_path"]."""
    path: str = scope.get("path", "")
    if _keeps_root_path():
        return path[len(base) :] if base and path.startswith(base) else path
    root_path: str = scope.get("root_path", "")
    return root_path[len(base) :] + path if root_path.startswith(base) else path


def _matching(
    shared: tuple[re.Pattern[str] | None, list[Entry]], scope: Mapping[str, Any], base: str
) -> str | None:
    """Of the routes sharing an endpoint, the one that matched the request (in the app's order)."""
    either, entries = shared
    if either is not None:
        found = either.match(_path_below(scope, base))
        if found is not None and found.lastgroup is not None:
            return entries[int(found.lastgroup[1:])][2]
    routing = sys.modules.get("starlette.routing")
    if routing is None:
        return None
    partial: str | None = None
    for _, route, template, _ in entries:  # the innermost router's scope: its routes can tell
        try:
            match = route.matches(scope)[0]
        except Exception:  # a route of the app's own that cannot read this scope: not it
            continue
        if match is routing.Match.FULL:
            return template
        if match is routing.Match.PARTIAL and partial is None:
            partial = template  # "405 Method Not Allowed" is answered by a partial match
    return partial
