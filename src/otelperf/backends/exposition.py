"""The Prometheus text format a process exposes on ``/metrics`` (the collector's :8888, Jaeger's
:14269): enough to sum counters by family and label.

Counters with labels, exemplars and timestamps are read; histograms and escapes inside label
values are tolerated, not interpreted.

    >>> text = scrape("http://127.0.0.1:8888/metrics")  # doctest: +SKIP
    >>> sum_family(text, "otelcol_exporter_sent_spans", {"exporter": "otlp_grpc/jaeger"})  # doctest: +SKIP
    1204.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

from otelperf.backends._http import get_text

__all__ = ["labels_of", "sample_name_and_value", "samples", "scrape", "sum_family"]

_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def scrape(url: str, timeout: float = 2.0) -> str:
    """The page's text; BackendError when it cannot be read."""
    return get_text(url, timeout=timeout)


def _split(line: str) -> tuple[str, str, str] | None:
    """``name{labels} rest`` -> (name, labels text, rest); None for comments and junk."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        close = _closing_brace(line, brace)
        if close == -1:
            return None
        return line[:brace].strip(), line[brace + 1 : close], line[close + 1 :]
    if space == -1:
        return None
    return line[:space].strip(), "", line[space:]


def _value(rest: str) -> float | None:
    fields = rest.split("#", 1)[0].split()
    if not fields:
        return None
    try:
        return float(fields[0])
    except ValueError:
        return None


def sample_name_and_value(line: str) -> tuple[str, float] | None:
    """``name{labels} value [timestamp] [# exemplar]`` -> (name, value); None for other lines."""
    parts = _split(line)
    if parts is None:
        return None
    value = _value(parts[2])
    return None if value is None else (parts[0], value)


def labels_of(text: str) -> dict[str, str]:
    """``a="1",b="x \\" y"`` -> ``{"a": "1", "b": 'x " y'}``."""
    out = {}
    for match in _LABEL.finditer(text):
        out[match.group(1)] = re.sub(
            r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group(2)
        )
    return out


def samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line."""
    for line in text.splitlines():
        parts = _split(line)
        if parts is None:
            continue
        value = _value(parts[2])
        if value is not None:
            yield parts[0], labels_of(parts[1]), value


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


def sum_family(text: str, family: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Sum of every sample of ``family`` (with or without `_total`) whose labels include
    ``labels``; None when there is no such sample (the collector creates some series only on
    first use)."""
    names = {family, family + "_total"}
    wanted = dict(labels or {})
    total: float | None = None
    for name, have, value in samples(text):
        if name not in names or math.isnan(value) or not wanted.items() <= have.items():
            continue
        total = (total or 0.0) + value
    return total
