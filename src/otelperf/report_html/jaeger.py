"""Example traces for findings, from Jaeger's api_v3 search.

The findings counters carry no exemplars, but every finding is also an ``otelperf.finding`` span
event in its trace, under the request's SERVER span (whose name is the finding's route). So the
report searches Jaeger once per (service, route) that had findings, by operation name, and keeps
the first few trace ids per (detector, fingerprint).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from otelperf import _names

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
EXAMPLES_PER_FINDING = 3
TRACES_PER_SEARCH = 100

# (service, detector, fingerprint) and (service, detector, route) -> example trace ids
Examples = dict[tuple[str, str, str], list[str]]


class JaegerUnreachable(Exception):
    pass


def rfc3339(unix_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_seconds))


def hex_id(value: str, size: int = 16) -> str:
    """Jaeger's api_v3 writes ids as hex; protobuf's canonical JSON would be base64."""
    if len(value) == size * 2 and all(c in "0123456789abcdefABCDEF" for c in value):
        return value.lower()
    import base64

    return base64.b64decode(value).hex()


def search(
    jaeger: str, service: str, operation: str, *, start: float, end: float, timeout: float = 10.0
) -> Any:
    params = {
        "query.service_name": service,
        "query.start_time_min": rfc3339(start - 1),
        "query.start_time_max": rfc3339(end + 1),
        "query.num_traces": str(TRACES_PER_SEARCH),
    }
    if operation:
        params["query.operation_name"] = operation
    url = f"{jaeger.rstrip('/')}/api/v3/traces?{urllib.parse.urlencode(params)}"
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # "No traces found"
            return {}
        raise JaegerUnreachable(f"{jaeger} answered HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise JaegerUnreachable(f"cannot read {jaeger}: {exc}") from None


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        value = item.get("value", {})
        out[item.get("key", "")] = str(next(iter(value.values()), "")) if value else ""
    return out


def finding_events(document: Any) -> Iterable[tuple[str, dict[str, str]]]:
    """(trace id, event attributes) of every ``otelperf.finding`` event in a search answer."""
    for resource_spans in (document or {}).get("result", {}).get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for event in span.get("events", []):
                    if event.get("name") == _names.FINDING_EVENT:
                        yield hex_id(span["traceId"]), _attributes(event.get("attributes"))


def finding_traces(jaeger: str, routes: Iterable[tuple[str, str]], start: float, end: float) -> Examples:
    out: Examples = {}
    for service, route in sorted(set(routes)):
        if not service:
            continue
        for trace_id, attrs in finding_events(search(jaeger, service, route, start=start, end=end)):
            detector = attrs.get(_names.FINDING_DETECTOR, "")
            for key in (
                (service, detector, attrs.get(_names.FINDING_FINGERPRINT, "")),
                (service, detector, route),
            ):
                ids = out.setdefault(key, [])
                if trace_id not in ids and len(ids) < EXAMPLES_PER_FINDING:
                    ids.append(trace_id)
    return out
