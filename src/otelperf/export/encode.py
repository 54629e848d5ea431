"""A fast OTLP/protobuf encoder for finished spans.

The SDK's encoder builds a protobuf object for every span, attribute and value, then serializes
the tree; for a typical span that costs more CPU than creating the span did. This module writes
the wire format directly, and caches the encoding of each (key, value) attribute pair, which
repeats from span to span (``db.system.name=postgresql``, a route, a sanitized statement), as
well as each resource and scope. The output decodes to the same ``ExportTraceServiceRequest`` the
SDK would produce (tested field by field against the SDK's encoder).

Wire format reference: opentelemetry-proto ``trace/v1/trace.proto`` and ``common/v1/common.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from math import isnan
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanKind, StatusCode

from otelperf._sdk import readable as _readable
from otelperf._sdk import span_context as _ctx

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

__all__ = ["encode_spans"]

_pack_fixed64 = struct.Struct("<Q").pack
_pack_double = struct.Struct("<d").pack
_pack_fixed32 = struct.Struct("<I").pack

_KIND = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

# Bounded caches: cleared whole when full (cheaper than LRU bookkeeping on this path).
_KV_CACHE_MAX = 8192
_kv_cache: dict[tuple[Any, ...], bytes] = {}
_static_cache: dict[int, tuple[Any, bytes]] = {}
_STATIC_CACHE_MAX = 64


def _bounded_put(cache: dict[Any, bytes], key: Any, value: bytes, limit: int) -> bytes:
    """Store ``value`` and return it; a full cache is cleared whole (cheaper than LRU here)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Precomputed single-byte tags: (field_number << 3) | wire_type.
def _tag(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _len_field(field_tag: bytes, payload: bytes) -> bytes:
    return field_tag + _varint(len(payload)) + payload


def _str_field(field_tag: bytes, text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    return field_tag + _varint(len(data)) + data


def _strict_str_field(field_tag: bytes, text: str) -> bytes:
    # Attribute keys and values: a lone surrogate raises, and the attribute is dropped, as the SDK does.
    data = text.encode("utf-8")
    return field_tag + _varint(len(data)) + data


_T1_LEN, _T2_LEN, _T3_LEN, _T4_LEN, _T5_LEN = (_tag(n, 2) for n in (1, 2, 3, 4, 5))
_T6_LEN, _T7_LEN = _tag(6, 2), _tag(7, 2)
_T9_LEN, _T11_LEN, _T13_LEN, _T15_LEN = _tag(9, 2), _tag(11, 2), _tag(13, 2), _tag(15, 2)
_T1_FIXED64, _T4_FIXED64 = _tag(1, 1), _tag(4, 1)
_T7_FIXED64, _T8_FIXED64 = _tag(7, 1), _tag(8, 1)
_T2_VARINT, _T3_VARINT, _T4_VARINT = _tag(2, 0), _tag(3, 0), _tag(4, 0)
_T5_VARINT, _T6_VARINT = _tag(5, 0), _tag(6, 0)
_T10_VARINT, _T12_VARINT, _T14_VARINT = _tag(10, 0), _tag(12, 0), _tag(14, 0)
_T6_FIXED32, _T16_FIXED32 = _tag(6, 5), _tag(16, 5)


def _any_value(value: Any) -> bytes:
    """An encoded AnyValue message (without its own tag/length)."""
    if isinstance(value, bool):
        return _T2_VARINT + (b"\x01" if value else b"\x00")
    if isinstance(value, str):
        return _strict_str_field(_T1_LEN, value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            # A wider int would make an over-long varint and corrupt the whole request.
            raise ValueError(f"int attribute value out of int64 range: {value}")
        return _T3_VARINT + _varint(value)
    if isinstance(value, float):
        return _tag(4, 1) + _pack_double(value)
    if isinstance(value, bytes):
        return _len_field(_T7_LEN, value)
    if isinstance(value, Sequence):
        inner = b"".join(_len_field(_T1_LEN, _any_value(v)) for v in value)
        return _len_field(_T5_LEN, inner)
    if isinstance(value, Mapping):
        inner = b"".join(_len_field(_T1_LEN, _key_value(str(k), v)) for k, v in value.items())
        return _len_field(_T6_LEN, inner)
    if value is None:
        return b""
    raise TypeError(f"cannot encode attribute value of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    return _strict_str_field(_T1_LEN, key) + _len_field(_T2_LEN, _any_value(value))


_CACHED_TYPES = (str, int, bool)


def _attributes(field_tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    parts = []
    cache = _kv_cache
    span_attributes = field_tag is _T9_LEN
    for item in attributes.items():
        key, value = item
        kind = type(value)
        # A span's string attributes (most of them) are cached under the (key, value) pair that
        # items() already made; everything else under (tag, key, type, value): 1, 1.0 and True are
        # equal keys but encode differently. Floats equal to zero or NaN are not cached: 0.0 == -0.0
        # (different bits) and NaN != NaN.
        ck: Any
        if kind is str and span_attributes:
            ck = item
        elif (
            kind is str
            or kind is int
            or kind is bool
            or (kind is float and value != 0.0 and not isnan(value))
        ):
            ck = (field_tag, key, kind, value)
        else:
            ck = None
        try:
            encoded = cache.get(ck) if ck is not None else None
            if encoded is None:
                encoded = _len_field(field_tag, _key_value(key, value))
                if ck is not None:
                    _bounded_put(cache, ck, encoded, _KV_CACHE_MAX)
        except (TypeError, ValueError):
            continue  # not representable in OTLP: dropped, as the SDK's encoder drops it
        parts.append(encoded)
    return b"".join(parts)


_BLOCK_CACHE_MAX = 2048
_block_cache: dict[tuple[tuple[Any, ...], tuple[type, ...]], bytes] = {}
_BLOCK_TYPES = frozenset((str, int, bool))


def _span_attributes(attributes: dict[str, Any], remember_identity: bool = False) -> bytes:
    """A span's whole attribute block, cached by its (key, value) pairs and their types: a
    statement's or a route's spans repeat the same attributes, and one lookup (hashed in C) then
    replaces the per-attribute work. Only str, int and bool values: with the types in the key,
    ``1`` and ``True`` stay apart; floats (0.0 == -0.0, NaN) and sequences ([1] == [True]) would not.
    """
    kinds = tuple(map(type, attributes.values()))
    if not _BLOCK_TYPES.issuperset(kinds):
        return _attributes(_T9_LEN, attributes)
    block_key = (tuple(attributes.items()), kinds)
    encoded = _block_cache.get(block_key)
    if encoded is None:
        return _bounded_put(_block_cache, block_key, _attributes(_T9_LEN, attributes), _BLOCK_CACHE_MAX)
    if remember_identity:  # seen before: this dict may be one that an instrumentation reuses
        if len(_identity_blocks) >= _IDENTITY_BLOCKS_MAX:
            _identity_blocks.clear()
        _identity_blocks[id(attributes)] = (attributes, encoded)
    return encoded


def _static(obj: Any, build: Any, cache: dict[int, tuple[Any, bytes]] | None = None) -> bytes:
    """Encode an immutable, long-lived object once per object: a Resource or InstrumentationScope
    (they live as long as providers), or a shared Status (in its own ``cache``)."""
    if cache is None:
        cache = _static_cache
    key = id(obj)
    hit = cache.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    encoded: bytes = build(obj)
    if len(cache) >= _STATIC_CACHE_MAX:
        cache.clear()
    cache[key] = (obj, encoded)
    return encoded


def _resource(resource: Any) -> bytes:
    return _attributes(_T1_LEN, resource.attributes)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    out = _str_field(_T1_LEN, scope.name) if scope.name else b""
    if scope.version:
        out += _str_field(_T2_LEN, scope.version)
    attributes = getattr(scope, "attributes", None)
    if attributes:
        out += _attributes(_T3_LEN, attributes)
    return out


_FLAGS_LOCAL_PARENT = _T16_FIXED32 + _pack_fixed32(_HAS_IS_REMOTE)
_FLAGS_REMOTE_PARENT = _T16_FIXED32 + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_name_cache: dict[str, bytes] = {}


def _name_field(name: str) -> bytes:
    encoded = _name_cache.get(name)
    if encoded is None:
        encoded = _bounded_put(_name_cache, name, _str_field(_T5_LEN, name), _KV_CACHE_MAX)
    return encoded


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


_KIND_BY_ID = {id(kind): _T6_VARINT + bytes((number,)) for kind, number in _KIND.items()}
_status_cache: dict[int, tuple[Any, bytes]] = {}
_PLAIN_SEQUENCES = (tuple, list)


def _status(status: Any) -> bytes:
    # UNSET (and ERROR without a message) are shared objects: encoded once per object.
    return _static(status, _status_field, _status_cache)


def _status_field(status: Any) -> bytes:
    body = b""
    if status.description:
        body += _str_field(_T2_LEN, status.description)
    code = status.status_code
    if code is not StatusCode.UNSET:
        body += _T3_VARINT + _varint(code.value)
    return _len_field(_T15_LEN, body)


# Fields that repeat from span to span in a batch: the spans of one request are passed on together,
# so a span usually has the trace id (and often the parent) of the span before it.
_last_trace: list[tuple[int | None, bytes]] = [(None, b"")]  # [(trace id, its encoded field)]
_last_parent: list[tuple[int | None, bytes]] = [(None, b"")]  # [(parent span id, its encoded field)]
_TRACE_ID_TAG = _T1_LEN + b"\x10"
_SPAN_ID_TAG = _T2_LEN + b"\x08"
_PARENT_ID_TAG = _T4_LEN + b"\x08"
_pack_times = struct.Struct("<BQBQ").pack  # start and end, with their tags, in one C call
_TAG_START, _TAG_END = _T7_FIXED64[0], _T8_FIXED64[0]
_pack_prefix2 = struct.Struct("BBB").pack
_SPAN_TAG = _T2_LEN[0]  # a span inside ScopeSpans
_DEFAULT_TRACE_STATE = DEFAULT_TRACE_STATE


def _span_prefix(size: int) -> bytes:
    """Tag and length of a span of ``size`` bytes inside ScopeSpans (128 B to 16 KiB, almost always)."""
    if size < 0x80:
        return bytes((_SPAN_TAG, size))
    if size < 0x4000:
        return _pack_prefix2(_SPAN_TAG, (size & 0x7F) | 0x80, size >> 7)
    return _T2_LEN + _varint(size)


# Attribute blocks by dict identity: an instrumentation that hands the same attributes dict to
# many spans (a statement's, a cache's) gets its block for one lookup. Entered only for a dict
# whose contents were already in the block cache (so a dict seen once costs nothing here); each
# entry keeps its dict alive, so an id cannot be reused while it is cached.
_identity_blocks: dict[int, tuple[dict[str, Any], bytes]] = {}


_IDENTITY_BLOCKS_MAX = 1024


def _span(span: ReadableSpan) -> bytes:
    if type(span) is not ReadableSpan or not _readable.FIELDS_HOLD:
        return _span_general(span)
    events, links, attributes = _readable.payload_fields(span)
    if (
        events
        or links
        or type(events) not in _PLAIN_SEQUENCES  # an SDK BoundedList may be empty yet count drops
        or type(links) not in _PLAIN_SEQUENCES
        or type(attributes) is not dict
    ):
        return _span_general(span)
    # The common case (otelperf's own spans: plain-dict attributes, no events or links, so nothing
    # dropped): read the fields behind ReadableSpan's properties, and the SpanContexts' tuples.
    # Attribute reads, not ``span.__dict__``: on CPython 3.11+ that builds a dict for the object.
    ctx, parent, name, kind, start, end, status = _readable.head_fields(span)
    if ctx is None or not _ctx.uses_tuple_layout:
        return _span_general(span)
    try:
        trace_id = _ctx.trace_id(ctx)
        last = _last_trace[0]  # one read and one write of a (key, field) pair: safe across threads
        if trace_id != last[0]:
            last = _last_trace[0] = (trace_id, _TRACE_ID_TAG + trace_id.to_bytes(16, "big"))
        span_id = _ctx.span_id(ctx).to_bytes(8, "big")
        trace_state = _ctx.trace_state(ctx)
        state_field = b""
        if trace_state is not _DEFAULT_TRACE_STATE and trace_state:  # field 3, rare
            state_field = _str_field(_T3_LEN, ",".join(f"{k}={v}" for k, v in trace_state.items()))
        parent_field = b""
        if parent is not None:
            parent_id = _ctx.span_id(parent)
            last_parent = _last_parent[0]
            if parent_id != last_parent[0]:
                last_parent = _last_parent[0] = (parent_id, _PARENT_ID_TAG + parent_id.to_bytes(8, "big"))
            parent_field = last_parent[1]
        times = _pack_times(_TAG_START, start or 0, _TAG_END, end or 0)
    except (OverflowError, struct.error):  # an id or a time out of range: the general path says which
        return _span_general(span)
    name_field = _name_cache.get(name) if name else b""
    if name_field is None:
        name_field = _name_field(name)
    hit = _identity_blocks.get(id(attributes))
    if hit is not None and hit[0] is attributes:
        block = hit[1]
    else:
        block = _span_attributes(attributes, remember_identity=True)
    status_hit = _status_cache.get(id(status))
    status_field = status_hit[1] if status_hit is not None and status_hit[0] is status else _status(status)
    return b"".join(
        (
            last[1],
            _SPAN_ID_TAG,
            span_id,
            state_field,
            parent_field,
            name_field,
            _KIND_BY_ID.get(id(kind), b""),
            times,
            block,
            status_field if status is not None else b"",
            _FLAGS_REMOTE_PARENT if parent is not None and _ctx.is_remote(parent) else _FLAGS_LOCAL_PARENT,
        )
    )


def _span_general(span: ReadableSpan) -> bytes:
    ctx = span.get_span_context()
    assert ctx is not None
    parts = [
        _T1_LEN + b"\x10" + ctx.trace_id.to_bytes(16, "big"),
        _T2_LEN + b"\x08" + ctx.span_id.to_bytes(8, "big"),
    ]
    if ctx.trace_state:
        parts.append(_str_field(_T3_LEN, ",".join(f"{k}={v}" for k, v in ctx.trace_state.items())))
    parent = span.parent
    if parent is not None:
        parts.append(_T4_LEN + b"\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_name_field(span.name))
    kind = _KIND.get(span.kind, 0)
    if kind:
        parts.append(_T6_VARINT + bytes((kind,)))
    parts.append(_T7_FIXED64 + _pack_fixed64(span.start_time or 0))
    parts.append(_T8_FIXED64 + _pack_fixed64(span.end_time or 0))
    parts.append(_attributes(_T9_LEN, span.attributes))
    if span.dropped_attributes:
        parts.append(_T10_VARINT + _varint(span.dropped_attributes))
    for event in span.events:
        body = _T1_FIXED64 + _pack_fixed64(event.timestamp)
        if event.name:
            body += _str_field(_T2_LEN, event.name)
        body += _attributes(_T3_LEN, event.attributes)
        dropped = getattr(event, "dropped_attributes", 0)
        if dropped:
            body += _T4_VARINT + _varint(dropped)
        parts.append(_len_field(_T11_LEN, body))
    if span.dropped_events:
        parts.append(_T12_VARINT + _varint(span.dropped_events))
    for link in span.links:
        lctx = link.context
        body = (
            _T1_LEN
            + b"\x10"
            + lctx.trace_id.to_bytes(16, "big")
            + _T2_LEN
            + b"\x08"
            + lctx.span_id.to_bytes(8, "big")
        )
        # No trace_state: the SDK's encoder does not send a link's, and the output must equal it.
        body += _attributes(_T4_LEN, link.attributes)
        if link.dropped_attributes:
            body += _T5_VARINT + _varint(link.dropped_attributes)
        body += _T6_FIXED32 + _pack_fixed32(_flags(lctx))
        parts.append(_len_field(_T13_LEN, body))
    if span.dropped_links:
        parts.append(_T14_VARINT + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        parts.append(_status_field(status))
    parts.append(_FLAGS_REMOTE_PARENT if parent is not None and parent.is_remote else _FLAGS_LOCAL_PARENT)
    return b"".join(parts)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """Serialize ``spans`` as an OTLP ``ExportTraceServiceRequest``."""
    # Group by resource, then scope, in first-seen order, merging equal (not only identical)
    # resources and scopes as the SDK's encoder does: two providers with equal resources, or two
    # tracers of one name from two providers, share a group. Hashing a Resource serializes its
    # attributes, so it happens once per distinct pair of objects per batch, not per span.
    grouped: dict[Any, dict[Any, list[bytes]]] = {}
    by_ids: dict[tuple[int, int], list[bytes]] = {}
    last_resource = last_scope = entry = None
    for span in spans:
        if type(span) is ReadableSpan and _readable.FIELDS_HOLD:
            resource, scope = _readable.resource_and_scope(span)
        else:
            resource, scope = span.resource, span.instrumentation_scope
        if entry is None or resource is not last_resource or scope is not last_scope:
            ids = (id(resource), id(scope))
            entry = by_ids.get(ids)
            if entry is None:
                entry = by_ids[ids] = grouped.setdefault(resource, {}).setdefault(scope, [])
            last_resource, last_scope = resource, scope
        body = _span(span)
        entry.append(_span_prefix(len(body)))
        entry.append(body)

    out = []
    for resource, scopes in grouped.items():
        body = _len_field(_T1_LEN, _static(resource, _resource))
        for scope, encoded_spans in scopes.items():
            scope_body = _len_field(_T1_LEN, _static(scope, _scope)) + b"".join(encoded_spans)
            schema_url = getattr(scope, "schema_url", "") if scope is not None else ""
            if schema_url:
                scope_body += _str_field(_T3_LEN, schema_url)
            body += _len_field(_T2_LEN, scope_body)
        if getattr(resource, "schema_url", ""):
            body += _str_field(_T3_LEN, resource.schema_url)
        out.append(_len_field(_T1_LEN, body))
    return b"".join(out)
