"""Traces for the waterfall tests, written as Jaeger's api_v3 answers them (OTLP JSON, ids in hex,
int64 as text), so the same document feeds the parser, the layout and a fake Jaeger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from otelperf.backends.jaeger import Trace, parse_spans

TRACE_ID = "5b8efff798038103d269b633813fc60c"
T0 = 1_796_207_347_000_000_000  # ns
MS = 1_000_000


@dataclass
class S:
    """A span: times in ms from T0; ``parent`` the parent's ``sid``."""

    sid: str
    name: str
    start: float
    end: float
    parent: str = ""
    kind: int = 1  # INTERNAL; 2 SERVER, 3 CLIENT
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    error: bool = False


def span_id(sid: str) -> str:
    """A 16-hex span id from a short test name ("root" -> "0000000000726f6f"-like, stable)."""
    return sid.encode().hex()[-16:].rjust(16, "0")


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attrs(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in attrs.items()]


def document(spans: list[S], trace_id: str = TRACE_ID, service: str = "shop") -> dict[str, Any]:
    raw = []
    for s in spans:
        item: dict[str, Any] = {
            "traceId": trace_id,
            "spanId": span_id(s.sid),
            "name": s.name,
            "kind": s.kind,
            "startTimeUnixNano": str(T0 + int(s.start * MS)),
            "endTimeUnixNano": str(T0 + int(s.end * MS)),
            "attributes": _attrs(s.attrs),
            "events": [
                {"timeUnixNano": str(T0 + int(s.end * MS)), "name": name, "attributes": _attrs(a)}
                for name, a in s.events
            ],
            "status": {"code": 2, "message": "boom"} if s.error else {},
        }
        if s.parent:
            item["parentSpanId"] = span_id(s.parent)
        raw.append(item)
    resource = {"attributes": _attrs({"service.name": service})}
    return {
        "result": {
            "resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": raw}]}]
        }
    }


def trace(spans: list[S], trace_id: str = TRACE_ID) -> Trace:
    return Trace(trace_id, tuple(parse_spans(document(spans, trace_id))))


def finding(detector: str, count: int, **extra: Any) -> tuple[str, dict[str, Any]]:
    attrs: dict[str, Any] = {
        "otelperf.finding.detector": detector,
        "otelperf.finding.severity": "critical",
        "otelperf.finding.fingerprint": f"fp-{detector}",
        "otelperf.finding.statement": "SELECT order_items.id FROM order_items WHERE order_id = ?",
        "otelperf.finding.count": count,
        "otelperf.finding.duration_ms": 30.5,
        "otelperf.finding.hint": "load the related rows in one query: selectinload()/joinedload()",
    }
    attrs.update(extra)
    return ("otelperf.finding", attrs)


SQL_ITEMS = "SELECT order_items.id FROM order_items WHERE order_id = ?"
SQL_ORDERS = "SELECT orders.id FROM orders LIMIT ?"
CALL_SITE = {
    "code.file.path": "/srv/shop/app/routes.py",
    "code.line.number": 42,
    "code.function.name": "list_orders",
}


def db(
    sid: str,
    start: float,
    end: float,
    parent: str,
    *,
    statement: str = SQL_ITEMS,
    events: list[tuple[str, dict[str, Any]]] | None = None,
    **attrs: Any,
) -> S:
    return S(
        sid,
        "SELECT shop",
        start,
        end,
        parent,
        kind=3,
        attrs={"db.system.name": "postgresql", "db.query.text": statement, **attrs},
        events=events or [],
    )


def n_plus_one_spans(repeats: int = 6, *, with_ids: bool = False) -> list[S]:
    """GET /orders: one query for the orders, then ``repeats`` lazy loads (the N+1, with call
    sites), a Redis GET and an outgoing HTTP call; the finding event on the handler span."""
    items = [db(f"item{i}", 10 + 5 * i, 13 + 5 * i, "handler", **CALL_SITE) for i in range(repeats)]
    extra = {"otelperf.finding.span_ids": [span_id(s.sid) for s in items]} if with_ids else {}
    end = 20 + 5 * repeats
    return [
        S("root", "GET /orders", 0, end + 10, kind=2, attrs={"http.request.method": "GET"}),
        S("handler", "list_orders", 1, end + 5, "root", events=[finding("n_plus_one", repeats, **extra)]),
        db("orders", 2, 8, "handler", statement=SQL_ORDERS),
        *items,
        S("redis", "GET", end, end + 1, "handler", kind=3, attrs={"db.system.name": "redis"}),
        S("http", "GET", end + 1, end + 4, "handler", kind=3, attrs={"http.request.method": "GET"}),
    ]


def n_plus_one_trace(repeats: int = 6, *, with_ids: bool = False, trace_id: str = TRACE_ID) -> Trace:
    return trace(n_plus_one_spans(repeats, with_ids=with_ids), trace_id)
