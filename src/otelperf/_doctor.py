"""``otelperf doctor``: what otelperf would do in this environment, and whether export can work."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from otelperf._version import __version__
from otelperf.config import KNOWN_INSTRUMENTATIONS, Settings, resolve_settings
from otelperf.instrumentation._base import SUPPORTED, check_supported, installed_version


@dataclass(frozen=True)
class EndpointCheck:
    url: str
    ok: bool
    detail: str


def check_endpoint(settings: Settings, timeout: float) -> EndpointCheck:
    """Can we reach the OTLP endpoint? For OTLP/HTTP, send an empty (valid) export request."""
    url = settings.full_traces_endpoint()
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return EndpointCheck(url, False, f"cannot connect to {host}:{port}: {exc.strerror or exc}")
    if settings.protocol == "grpc":
        return EndpointCheck(url, True, f"TCP connection to {host}:{port} accepted (gRPC not probed further)")
    headers = {"Content-Type": "application/x-protobuf", **dict(settings.headers)}
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return EndpointCheck(url, True, f"accepted an empty OTLP export (HTTP {response.status})")
    except urllib.error.HTTPError as exc:
        return EndpointCheck(url, False, f"answered HTTP {exc.code}: is this an OTLP/HTTP endpoint?")
    except (OSError, urllib.error.URLError) as exc:
        return EndpointCheck(url, False, f"connected but got no OTLP answer within {timeout}s: {exc}")


def gather(timeout: float) -> dict[str, Any]:
    settings = resolve_settings()
    libraries = []
    for name in KNOWN_INSTRUMENTATIONS:
        problem = check_supported(name)
        enabled = name in settings.instrument
        state: str
        if problem is not None:
            state, detail = problem.status, problem.detail
        else:
            state, detail = ("would instrument" if enabled else "disabled by settings"), ""
        libraries.append(
            {
                "name": name,
                "library": SUPPORTED[name][1],
                "version": installed_version(name),
                "supported": SUPPORTED[name][2],
                "state": state,
                "detail": detail,
            }
        )
    endpoint = check_endpoint(settings, timeout) if not settings.disabled else None
    return {
        "otelperf": __version__,
        "settings": {
            k: {"value": v, "source": settings.sources.get(k, "default")}
            for k, v in settings.as_dict().items()
        },
        "traces_endpoint": settings.full_traces_endpoint(),
        "metrics_endpoint": settings.full_metrics_endpoint(),
        "libraries": libraries,
        "endpoint": None
        if endpoint is None
        else {"url": endpoint.url, "ok": endpoint.ok, "detail": endpoint.detail},
    }


def run_doctor(timeout: float = 2.0, as_json: bool = False) -> int:
    report = gather(timeout)
    endpoint = report["endpoint"]
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"otelperf {report['otelperf']}\n\nsettings (value  <- where it came from):")
        for key, item in report["settings"].items():
            print(f"  {key:<24} {item['value']!s:<44} <- {item['source']}")
        print("\nlibraries:")
        for lib in report["libraries"]:
            version = lib["version"] or "-"
            extra = f"  ({lib['detail']})" if lib["detail"] else ""
            print(f"  {lib['name']:<11} {lib['library']:<11} {version:<10} {lib['state']}{extra}")
        print("\nOTLP endpoint:")
        if endpoint is None:
            print("  not checked: otelperf is disabled (OTEL_SDK_DISABLED / OTELPERF_DISABLED)")
        else:
            mark = "ok" if endpoint["ok"] else "UNREACHABLE"
            print(f"  {endpoint['url']}: {mark}: {endpoint['detail']}")
            if not endpoint["ok"]:
                print("  The app still runs normally; its telemetry is dropped until a collector answers.")
    return 0 if endpoint is None or endpoint["ok"] else 1
