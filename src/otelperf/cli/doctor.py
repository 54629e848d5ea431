"""``otelperf doctor``: what otelperf would do in this environment, and whether export can work."""

from __future__ import annotations

import argparse
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


DOCTOR_SPANS = 10


def send_test_batch(settings: Settings, timeout: float) -> dict[str, Any]:
    """Send a few spans through otelperf's own exporting processor and report its accounting."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    from otelperf.export import build_span_processor

    try:
        processor = build_span_processor(settings)
    except ImportError as exc:
        return {"ok": False, "detail": str(exc), "stats": None}
    provider = TracerProvider(
        resource=Resource({"service.name": settings.service_name}), shutdown_on_exit=False
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("otelperf.doctor")
    for i in range(DOCTOR_SPANS):
        with tracer.start_as_current_span("otelperf doctor test span", attributes={"otelperf.doctor.n": i}):
            pass
    processor.shutdown(timeout=max(timeout, 1.0))
    stats = processor.stats()
    ok = stats.spans_exported == DOCTOR_SPANS
    if ok:
        detail = f"delivered {stats.spans_exported} of {stats.spans_handed} test spans"
    else:
        detail = (
            f"delivered {stats.spans_exported} of {stats.spans_handed} test spans "
            f"(dropped: {stats.describe_drops()}); last error: {stats.last_error or 'none'}"
        )
    return {"ok": ok, "detail": detail, "stats": stats.to_dict()}


def prometheus_delivery(timeout: float) -> dict[str, Any]:
    """Per-service delivery figures from the otel.sdk.* metrics in the local Prometheus, if it answers."""
    from otelperf.export.figures import PROMETHEUS_URL, delivery_by_service

    try:
        services = delivery_by_service(PROMETHEUS_URL, timeout)
    except (OSError, ValueError, KeyError) as exc:
        return {"url": PROMETHEUS_URL, "error": f"not available: {exc}", "services": {}}
    return {"url": PROMETHEUS_URL, "error": None, "services": {k: v.to_dict() for k, v in services.items()}}


def fast_paths(settings: Settings) -> list[dict[str, Any]]:
    """otelperf's fast paths around the SDK for a provider as otelperf builds it with these settings
    (the sampler, the SDK's limits from the environment, ``sdk_fast_paths``). Processors an app adds
    later are checked by the running process itself (``Runtime.fast_paths()``)."""
    from opentelemetry.sdk.trace import TracerProvider

    from otelperf._runtime.setup import build_sampler
    from otelperf._sdk import describe
    from otelperf._sdk import fast_paths as sdk_fast_paths

    was_off = sdk_fast_paths.forced_off()
    sdk_fast_paths.force_off(not settings.sdk_fast_paths)
    try:
        provider = TracerProvider(sampler=build_sampler(settings), shutdown_on_exit=False)
        return [
            {"path": name, "on": on, "why": why}
            for name, on, why in describe(provider.get_tracer("otelperf"))
        ]
    finally:
        sdk_fast_paths.force_off(was_off)


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
    delivery = send_test_batch(settings, timeout) if endpoint is not None and endpoint.ok else None
    return {
        "otelperf": __version__,
        "settings": {
            k: {"value": v, "source": settings.sources.get(k, "default")}
            for k, v in settings.as_dict().items()
        },
        "traces_endpoint": settings.full_traces_endpoint(),
        "metrics_endpoint": settings.full_metrics_endpoint(),
        "libraries": libraries,
        "fast_paths": fast_paths(settings),
        "endpoint": None
        if endpoint is None
        else {"url": endpoint.url, "ok": endpoint.ok, "detail": endpoint.detail},
        "delivery": delivery,
        "prometheus_delivery": prometheus_delivery(timeout),
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
            print(f"  {lib['name']:<15} {lib['library']:<11} {version:<10} {lib['state']}{extra}")
        print("\nfast paths around the OpenTelemetry SDK (docs/internals.md#the-sdk-adapter):")
        for path in report["fast_paths"]:
            print(f"  {path['path']:<42} {'on ' if path['on'] else 'off'}  {path['why']}")
        print("\nOTLP endpoint:")
        if endpoint is None:
            print("  not checked: otelperf is disabled (OTEL_SDK_DISABLED / OTELPERF_DISABLED)")
        else:
            mark = "ok" if endpoint["ok"] else "UNREACHABLE"
            print(f"  {endpoint['url']}: {mark}: {endpoint['detail']}")
            if not endpoint["ok"]:
                print(
                    "  The app still runs normally; its spans wait in the retry buffer (retry_buffer,"
                    " oldest dropped and counted when full) until a collector answers."
                )
        _print_delivery(report)
    delivery = report["delivery"]
    healthy = endpoint is None or (endpoint["ok"] and delivery is not None and delivery["ok"])
    return 0 if healthy else 1


def _print_delivery(report: dict[str, Any]) -> None:
    delivery = report["delivery"]
    if delivery is not None:
        verdict = "ok" if delivery["ok"] else "FAILED"
        print(f"\nspan delivery (a test batch through otelperf's exporter): {verdict}")
        print(f"  {delivery['detail']}")
        stats = delivery["stats"]
        if stats:
            print(
                f"  export requests {stats['export_requests']}, failed attempts {stats['export_failures']}, "
                f"mean {stats['mean_export_seconds'] * 1000:.0f} ms"
            )
    prom = report["prometheus_delivery"]
    print(f"\nspan delivery per service (otel.sdk.* metrics in Prometheus, {prom['url']}):")
    if prom["error"]:
        print(f"  {prom['error']}")
    elif not prom["services"]:
        print("  no otel.sdk.* span metrics yet (services export them every metric interval)")
    for service, figures in sorted(prom["services"].items()):
        drops = ", ".join(f"{k}: {v}" for k, v in sorted(figures["dropped"].items())) or "none"
        dropped = sum(figures["dropped"].values())
        print(f"  {service:<24} delivered {figures['delivered']:<10} dropped {dropped} ({drops})")


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor(timeout=args.timeout, as_json=args.json)


def add_parser(sub: Any) -> None:
    """Register ``otelperf doctor`` on the CLI's subparsers."""
    doctor = sub.add_parser(
        "doctor", help="print the resolved settings and libraries, and check the collector"
    )
    doctor.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the OTLP endpoint")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.set_defaults(func=cmd_doctor)
