"""Production mode's export share, decided by trace id: one rule wherever it applies.

A trace is in the share when the low 64 bits of its id (random in W3C trace ids) are under
``share * (2**64 - 1)``: the rule of the SDK's TraceIdRatioBased sampler, so every service using
the same share keeps the same traces, and a distributed trace is kept or dropped whole. The
detector pipeline exports those traces (plus any with a finding or an error); the histograms take
their exemplars only from them, so an exemplar never points at a trace that was not exported.
"""

from __future__ import annotations

LOW_64_BITS = (1 << 64) - 1


def share_limit(share: float) -> float:
    """The bound under which a trace id's low 64 bits put it in ``share`` (0 to 1) of all traces."""
    return share * LOW_64_BITS


def in_share(trace_id: int, limit: float) -> bool:
    return (trace_id & LOW_64_BITS) < limit
