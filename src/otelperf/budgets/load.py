"""Reading a budgets file: TOML, then every key checked, with ``<file>:<line>: <key>:`` errors."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from otelperf.budgets.model import (
    DEFAULT_ROUTE,
    DEFAULT_ROUTE_BUDGET,
    HTTP_METHODS,
    BudgetError,
    Budgets,
    ExpectedFinding,
    RouteBudget,
    normalize_route,
)


def _tomllib() -> Any:
    # Imported on first parse: init() looks for a budgets file in every process it starts (test
    # runs, workers), and most find none.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    return tomllib


__all__ = ["FILE_NAME", "find_budgets_file", "load_budgets", "parse_budgets"]

FILE_NAME = "otelperf.toml"


# --- value parsers: return the typed value or raise ValueError(<what is accepted>) ---


def _duration_ms(raw: Any) -> float:
    accepted = "a duration such as 250, '250ms', '1.5s' or '2m' (a bare number is milliseconds)"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m)?\s*", raw)
        if not match:
            raise ValueError(accepted)
        value = float(match.group(1)) * {"ms": 1.0, "s": 1000.0, "m": 60000.0, None: 1.0}[match.group(2)]
    else:
        raise ValueError(accepted)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(accepted + ", greater than 0")
    return value


def _fraction(raw: Any, *, allow_zero: bool = True) -> float:
    accepted = "a percentage such as '1%' or a fraction between 0 and 1 such as 0.01"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%)?\s*", raw)
        if not match:
            raise ValueError(accepted)
        value = float(match.group(1)) / (100.0 if match.group(2) else 1.0)
    else:
        raise ValueError(accepted)
    if not (0.0 <= value <= 1.0) or (value == 0.0 and not allow_zero):
        raise ValueError(accepted)
    return value


def _target(raw: Any) -> float:
    value = _fraction(raw)
    if not 0.0 < value < 1.0:
        raise ValueError("a percentage above 0 and below 100 such as '99.9%', or a fraction such as 0.999")
    return value


def _rps(raw: Any) -> float | None:
    accepted = "a number of requests per second >= 0 (0 = no floor), e.g. 100 or '100/s'"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:/s|rps|req/s)?\s*", raw)
        if not match:
            raise ValueError(accepted)
        raw = float(match.group(1))
    if not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 0:
        raise ValueError(accepted)
    return float(raw) or None


def _days(raw: Any) -> int:
    accepted = "a whole number of days such as 28 or '28d' (or weeks: '4w')"
    if isinstance(raw, bool):
        raise ValueError(accepted)
    if isinstance(raw, str):
        match = re.fullmatch(r"\s*([0-9]+)\s*(d|w)?\s*", raw)
        if not match:
            raise ValueError(accepted)
        raw = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if not isinstance(raw, int) or raw <= 0:
        raise ValueError(accepted)
    return raw


def _service(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("a non-empty string: the service.name of the service (its Prometheus job)")
    return raw.strip()


_ROUTE_KEYS: dict[str, Callable[[Any], Any]] = {
    "p95": _duration_ms,
    "p99": _duration_ms,
    "error_rate": _fraction,
    "min_rps": _rps,
}
_SECTIONS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "defaults": _ROUTE_KEYS,
    "db": {
        "avg_query": _duration_ms,
        "max_query": _duration_ms,
        "pool_max_utilization": lambda raw: _fraction(raw, allow_zero=False),
    },
    "cache": {"min_hit_ratio": _fraction},
    "slo": {"target": _target, "window": _days},
    "alerts": {"for": lambda raw: _duration_ms(raw) / 1000.0},
}
_TOP_KEYS = ("service", "defaults", "routes", "db", "cache", "slo", "alerts", "expected")
_EXPECTED_KEYS = ("detector", "route", "fingerprint", "reason")


# --- locating a key in the text (tomllib reports lines only for syntax errors) ---

_BARE = r"[A-Za-z0-9_-]+"
_KEY_PART = rf'(?:{_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN_RE = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART_RE = re.compile(_KEY_PART)


def _split_dotted(text: str) -> tuple[str, ...]:
    parts = []
    for raw in _PART_RE.findall(text):
        if raw[0] == '"':  # TOML basic-string escapes are JSON's (plus \U, which routes do not need)
            try:
                parts.append(json.loads(raw))
            except ValueError:
                parts.append(raw[1:-1])
        else:
            parts.append(raw[1:-1] if raw[0] == "'" else raw)
    return tuple(parts)


def _key_lines(text: str) -> Iterator[tuple[tuple[str, ...], int]]:
    """Every table header and key assignment with its full key path and 1-based line number."""
    table: tuple[str, ...] = ()
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline:  # inside a multi-line string: nothing here is a key
            if line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER_RE.match(line)
        if header:
            table = _split_dotted(header.group(1))
            yield table, number
            continue
        assign = _ASSIGN_RE.match(line)
        if assign:
            yield table + _split_dotted(assign.group(1)), number
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_multiline = quote


def _line_of(text: str, path: tuple[str, ...]) -> int:
    """The line that defines ``path``, else its nearest defined parent (inline tables), else 1."""
    best, best_len = 1, -1
    for key, number in _key_lines(text):
        if key == path:
            return number
        if len(key) > best_len and path[: len(key)] == key:
            best, best_len = number, len(key)
    return best


def _show_key(path: tuple[str, ...]) -> str:
    return ".".join(p if re.fullmatch(_BARE, p) else '"' + p.replace('"', '\\"') + '"' for p in path)


# --- loading ---


class _Reader:
    def __init__(self, file: str, text: str, prefix: tuple[str, ...]) -> None:
        self.file, self.text, self.prefix = file, text, prefix

    def error(self, path: tuple[str, ...], what: str) -> BudgetError:
        full = self.prefix + path
        line = _line_of(self.text, full)
        key = _show_key(full)
        return BudgetError(f"{self.file}:{line}: {key}: {what}", file=self.file, line=line, key=key)

    def check_keys(self, table: Mapping[str, Any], path: tuple[str, ...], known: tuple[str, ...]) -> None:
        for key in table:
            if key not in known:
                import difflib  # only for this hint: not worth importing with every init()

                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.error((*path, key), f"unknown key; {hint}(accepted: {', '.join(known)})")

    def table(self, data: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
        value = data.get(path[-1], {})
        if not isinstance(value, dict):
            raise self.error(path, "must be a table (accepted: a [section] with keys)")
        return value

    def values(self, data: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        known = _SECTIONS["defaults" if path[0] == "routes" else path[0]]
        table = self.table(data, path) if len(path) == 1 else data
        self.check_keys(table, path, tuple(known))
        out: dict[str, Any] = {}
        for key, raw in table.items():
            try:
                out[key] = known[key](raw)
            except ValueError as exc:
                raise self.error((*path, key), f"invalid value {raw!r} (accepted: {exc})") from None
        return out


def parse_budgets(data: Mapping[str, Any], *, file: str = "<budgets>", text: str = "") -> Budgets:
    """Budgets from an already-parsed TOML table (``text`` is only used to find line numbers)."""
    return _build(_Reader(file, text, ()), data)


def _build(reader: _Reader, data: Mapping[str, Any]) -> Budgets:
    reader.check_keys(data, (), _TOP_KEYS)
    service = None
    if "service" in data:
        try:
            service = _service(data["service"])
        except ValueError as exc:
            raise reader.error(("service",), f"invalid value {data['service']!r} (accepted: {exc})") from None

    defaults = reader.values(data, ("defaults",))
    d = DEFAULT_ROUTE_BUDGET
    default_route = RouteBudget(
        DEFAULT_ROUTE,
        p95_ms=defaults.get("p95", d.p95_ms),
        p99_ms=defaults.get("p99", d.p99_ms),
        error_rate=defaults.get("error_rate", d.error_rate),
        min_rps=defaults.get("min_rps", d.min_rps),
    )
    _check_p99(reader, ("defaults",), default_route)

    routes = [default_route]
    seen: dict[str, str] = {}
    for raw_route, table in reader.table(data, ("routes",)).items():
        path = ("routes", raw_route)
        route = normalize_route(raw_route)
        if raw_route.strip() == DEFAULT_ROUTE:
            raise reader.error(path, 'the default route is set in [defaults] (accepted: "METHOD /template")')
        if route is None:
            raise reader.error(
                path,
                'not a route (accepted: "METHOD /template" as in the span name, e.g. '
                f'"GET /orders/{{order_id}}"; METHOD one of {", ".join(HTTP_METHODS)})',
            )
        if route in seen:
            raise reader.error(path, f"same route as {seen[route]!r} (accepted: each route once)")
        seen[route] = raw_route
        if not isinstance(table, dict):
            raise reader.error(path, "must be a table (accepted: p95, p99, error_rate, min_rps)")
        own = reader.values(table, path)
        budget = RouteBudget(
            route,
            p95_ms=own.get("p95", default_route.p95_ms),
            p99_ms=own.get("p99", default_route.p99_ms),
            error_rate=own.get("error_rate", default_route.error_rate),
            min_rps=own.get("min_rps"),
        )
        _check_p99(reader, path, budget)
        routes.append(budget)

    db = reader.values(data, ("db",))
    cache = reader.values(data, ("cache",))
    slo = reader.values(data, ("slo",))
    alerts = reader.values(data, ("alerts",))
    base = Budgets()
    budgets = Budgets(
        service=service,
        routes=tuple(routes),
        db_avg_query_ms=db.get("avg_query", base.db_avg_query_ms),
        db_max_query_ms=db.get("max_query", base.db_max_query_ms),
        pool_max_utilization=db.get("pool_max_utilization", base.pool_max_utilization),
        cache_min_hit_ratio=cache.get("min_hit_ratio", base.cache_min_hit_ratio),
        slo_target=slo.get("target", base.slo_target),
        slo_window_days=slo.get("window", base.slo_window_days),
        source=reader.file,
        alert_for_s=alerts.get("for", base.alert_for_s),
        expected=_expected(reader, data.get("expected", [])),
    )
    if budgets.db_avg_query_ms > budgets.db_max_query_ms:
        raise reader.error(("db", "avg_query"), "is above db.max_query (accepted: avg_query <= max_query)")
    return budgets


def _expected(reader: _Reader, raw: Any) -> tuple[ExpectedFinding, ...]:
    """``[[expected]]`` entries: detector and reason required, then a route and/or a fingerprint."""
    from otelperf.config import KNOWN_DETECTORS

    if not isinstance(raw, list):
        raise reader.error(("expected",), "must be an array of tables (accepted: [[expected]] entries)")
    out = []
    for index, entry in enumerate(raw):
        path = ("expected",)
        if not isinstance(entry, dict):
            raise reader.error(path, "must be an array of tables (accepted: [[expected]] entries)")
        reader.check_keys(entry, path, _EXPECTED_KEYS)
        where = f"entry {index + 1}: "
        detector = entry.get("detector")
        if detector not in KNOWN_DETECTORS:
            raise reader.error(
                (*path, "detector"),
                f"{where}invalid value {detector!r} (accepted: one of {', '.join(KNOWN_DETECTORS)})",
            )
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise reader.error(
                (*path, "reason"), f"{where}missing (accepted: a non-empty string: why it is fine)"
            )
        route = entry.get("route")
        if route is not None:
            route = normalize_route(route) if isinstance(route, str) else None
            if route is None:
                raise reader.error(
                    (*path, "route"), f'{where}not a route (accepted: "METHOD /template" as in the span name)'
                )
        fingerprint = entry.get("fingerprint")
        if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint.strip()):
            raise reader.error(
                (*path, "fingerprint"), f"{where}invalid value (accepted: a fingerprint string)"
            )
        if route is None and fingerprint is None:
            raise reader.error(path, f"{where}too broad (accepted: a route, a fingerprint, or both)")
        out.append(ExpectedFinding(detector, reason.strip(), route, fingerprint and fingerprint.strip()))
    return tuple(out)


def _check_p99(reader: _Reader, path: tuple[str, ...], budget: RouteBudget) -> None:
    if budget.p99_ms is not None and budget.p99_ms < budget.p95_ms:
        raise reader.error(
            (*path, "p99"),
            f"{budget.p99_ms:g} ms is below p95 {budget.p95_ms:g} ms (accepted: p99 >= p95)",
        )


def _read(path: Path) -> Budgets:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BudgetError(f"{file}:0: (file): cannot read: {exc.strerror or exc}", file=file) from None
    toml = _tomllib()
    try:
        data: dict[str, Any] = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else 0
        what = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise BudgetError(
            f"{file}:{line}: (syntax): {what} (accepted: TOML, https://toml.io)", file=file, line=line
        ) from None
    prefix: tuple[str, ...] = ()
    if path.name == "pyproject.toml":
        prefix = ("tool", "otelperf")
        section = data.get("tool", {}).get("otelperf") if isinstance(data.get("tool"), dict) else None
        if not isinstance(section, dict):
            raise BudgetError(
                f"{file}:1: tool.otelperf: no [tool.otelperf] table (accepted: a pyproject.toml with one)",
                file=file,
                line=1,
                key="tool.otelperf",
            )
        data = section
    return _build(_Reader(file, text, prefix), data)


def _has_tool_section(pyproject: Path) -> bool:
    try:
        text = pyproject.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if "otelperf" not in text:
        # No [tool.otelperf] table can be in it (short of a key spelled with escapes): most projects'
        # pyproject.toml, found from the working directory of every process init() starts in.
        return False
    toml = _tomllib()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError:
        # A broken pyproject.toml is somebody else's problem unless it holds our table (then: say so).
        return "[tool.otelperf" in text
    tool = data.get("tool")
    return isinstance(tool, dict) and "otelperf" in tool


def find_budgets_file(start: Path | None = None) -> Path | None:
    """``otelperf.toml``, else a ``pyproject.toml`` with ``[tool.otelperf]``, in ``start`` or above."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / FILE_NAME
        if candidate.is_file():
            return candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and _has_tool_section(pyproject):
            return pyproject
    return None


def load_budgets(path: str | os.PathLike[str] | None = None, *, start: Path | None = None) -> Budgets:
    """Load budgets from ``path``, or the file found from ``start`` (default: cwd) upwards.

    With no file anywhere, the built-in defaults (``source=None``). Raises :class:`BudgetError`.
    """
    if path is not None:
        return _read(Path(path))
    found = find_budgets_file(start)
    return _read(found) if found else Budgets()
