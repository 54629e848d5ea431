"""The samplers whose answer otelperf can give itself: the SDK's ALWAYS_ON, ALWAYS_OFF and
ParentBased(ALWAYS_ON) with its default delegates.

Their decisions depend only on the parent, and ALWAYS_ON echoes the span's own attributes back
(which the SDK then merges, a copy per span): deciding here gives the same decision and trace state
without the call. Reading ParentBased's delegates means reading its private fields, hence here.
"""

from __future__ import annotations

from typing import Literal

from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, StaticSampler

__all__ = ["Rule", "plain_rule"]

Rule = Literal["on", "off", "parent"]


def _static_decision(sampler: object) -> Decision | None:
    if type(sampler) is StaticSampler:
        decision = getattr(sampler, "_decision", None)
        return decision if isinstance(decision, Decision) else None
    return None


def plain_rule(sampler: Sampler | None) -> Rule | None:
    """``"on"``/``"off"`` for ALWAYS_ON/ALWAYS_OFF, ``"parent"`` for ParentBased(ALWAYS_ON) with its
    default delegates; None for any other sampler (the SDK's path asks it, span by span)."""
    decision = _static_decision(sampler)
    if decision is not None:
        if decision is Decision.RECORD_AND_SAMPLE:
            return "on"
        return "off" if decision is Decision.DROP else None
    if type(sampler) is ParentBased:
        sampled_delegates = [
            _static_decision(getattr(sampler, name, None))
            for name in ("_root", "_remote_parent_sampled", "_local_parent_sampled")
        ]
        unsampled_delegates = [
            _static_decision(getattr(sampler, name, None))
            for name in ("_remote_parent_not_sampled", "_local_parent_not_sampled")
        ]
        if all(d is Decision.RECORD_AND_SAMPLE for d in sampled_delegates) and all(
            d is Decision.DROP for d in unsampled_delegates
        ):
            return "parent"
    return None
