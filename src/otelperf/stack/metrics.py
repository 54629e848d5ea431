"""Is telemetry flowing? The collector's own span counters, read from its :8888/metrics.

A small reader of the Prometheus text format: enough for counters with labels, exemplars and
timestamps; histograms and escaping inside label values are tolerated, not interpreted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# Counter families, without the `_total` suffix (older collectors and OpenMetrics differ on it).
ACCEPTED = "otelcol_receiver_accepted_spans"
REFUSED = "otelcol_receiver_refused_spans"
SENT = "otelcol_exporter_sent_spans"
SEND_FAILED = "otelcol_exporter_send_failed_spans"


def sample_name_and_value(line: str) -> tuple[str, float] | None:
    """``name{labels} value [timestamp] [# exemplar]`` -> (name, value); None for other lines."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name = line[:brace]
        close = _closing_brace(line, brace)
        if close == -1:
            return None
        rest = line[close + 1 :]
    else:
        if space == -1:
            return None
        name, rest = line[:space], line[space:]
    fields = rest.split("#", 1)[0].split()
    if not fields:
        return None
    try:
        value = float(fields[0])
    except ValueError:
        return None
    return name.strip(), value


def _closing_brace(line: str, start: int) -> int:
    in_quotes = escaped = False
    for index in range(start + 1, len(line)):
        char = line[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == "}" and not in_quotes:
            return index
    return -1


def sum_family(text: str, family: str) -> float | None:
    """Sum of every sample of ``family`` (with or without `_total`) over all label sets;
    None when the family is absent (the collector creates some series only on first use)."""
    names = {family, family + "_total"}
    total: float | None = None
    for line in text.splitlines():
        parsed = sample_name_and_value(line)
        if parsed is None or parsed[0] not in names or math.isnan(parsed[1]):
            continue
        total = (total or 0.0) + parsed[1]
    return total


@dataclass(frozen=True)
class SpanFlow:
    accepted: int
    refused: int
    sent: int
    send_failed: int

    @property
    def flowing(self) -> bool:
        return self.accepted > 0 and self.sent > 0

    def describe(self) -> str:
        if self.accepted == 0:
            state = "no spans received yet"
        elif self.refused or self.send_failed:
            state = "flowing, with losses"
        else:
            state = "flowing"
        return (
            f"{state}: {self.accepted} spans accepted, {self.refused} refused, "
            f"{self.sent} sent to Jaeger, {self.send_failed} failed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "flowing": self.flowing}


def span_flow(text: str) -> SpanFlow:
    def count(family: str) -> int:
        return int(sum_family(text, family) or 0)

    return SpanFlow(count(ACCEPTED), count(REFUSED), count(SENT), count(SEND_FAILED))
