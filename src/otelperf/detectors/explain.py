"""EXPLAIN for slow PostgreSQL SELECTs: once per statement shape, off the request path.

The slow-query detector asks :meth:`ExplainWorker.plan_for` about each slow PostgreSQL statement.
The first time it asks about a shape (a fingerprint on one database), an eligible statement is
queued for the worker thread and the answer is "no plan yet"; once the worker has the plan, every
later finding of that shape carries its headline (``Seq Scan on orders``) and a hint built on it.

What the worker promises, because it runs statements of its own against the app's database:

- never ``ANALYZE``: the statement is planned, not run; only ``SELECT`` and ``WITH ... SELECT``
  statements without a data-modifying word anywhere (``INSERT``, ``UPDATE``, ``FOR UPDATE``,
  ``SELECT ... INTO``...) are eligible, and they run in a ``READ ONLY`` transaction on a session
  with ``default_transaction_read_only`` and ``statement_timeout`` set;
- never the app's connections: a connection of its own (application_name ``otelperf-explain``),
  made from the engine's URL with psycopg (or psycopg2, or asyncpg on a private event loop) and
  closed after each plan;
- no values: otelperf never keeps a statement's literals, so the normalized statement is planned
  with its ``?`` turned into ``$1..$n``: ``EXPLAIN (GENERIC_PLAN)`` on PostgreSQL 16+, else
  ``PREPARE`` + ``plan_cache_mode = force_generic_plan`` + ``EXPLAIN EXECUTE name(NULL, ...)``
  (PostgreSQL 12+), deallocated after;
- bounded: one attempt per (database, fingerprint) ever, at most one EXPLAIN per ``min_interval_s``
  for the whole process, a short queue (a full queue drops the request, counted), bounded tables;
  the thread exits when idle and starts again on demand (so a forked child gets its own);
- harmless: a database error (a statement PostgreSQL cannot prepare without types, a timeout, an
  unreachable server) is counted in :class:`ExplainStats` and logged at most once a minute, with
  the error's type only; a bug of otelperf's is an internal error (:mod:`otelperf._runtime.guard`).
  The URL and password are never logged and never become an attribute.

The SQLAlchemy instrumentation tells this module about each PostgreSQL engine
(:func:`register_engine`); a span finds its engine again by ``server.address``, ``server.port``
and ``db.namespace``, the attributes it was given from the same URL.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context

from otelperf import _names
from otelperf._runtime import guard as _internal
from otelperf._sdk.suppression import SUPPRESS_KEY
from otelperf.detectors._explain_session import (
    STATEMENT_TIMEOUT_MS,
    Session,
    Target,
    TargetKey,
    connect,
    explain,
)

__all__ = [
    "ExplainStats",
    "ExplainWorker",
    "PlanSummary",
    "Target",
    "clear_targets",
    "explainable",
    "positional",
    "register_engine",
    "shared_worker",
    "summarize_plan",
]

logger = logging.getLogger("otelperf.explain")

MAX_TARGETS = 64
MAX_PLANS = 2000
MAX_SEEN = 10_000
QUEUE_SIZE = 16
MIN_INTERVAL_S = 1.0
IDLE_EXIT_S = 30.0
MAX_STATEMENT_LENGTH = 10_000
MAX_PARAMETERS = 1000
MAX_SEQ_SCANS = 8

# Instrumentations skip otelperf's own EXPLAIN connection.
_SUPPRESS_KEY = SUPPRESS_KEY

# --- which database a span talks to ------------------------------------------------------------

# libpq connection parameters worth passing on from a URL's query (TLS, unix sockets, routing).
_LIBPQ_QUERY_KEYS = frozenset({
    "host", "hostaddr", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword",
    "gssencmode", "channel_binding", "krbsrvname", "target_session_attrs", "passfile", "service",
})  # fmt: skip
# asyncpg URLs spell TLS "ssl=require"; libpq calls it sslmode.
_SSL_MODES = {"true": "require", "1": "require", "false": "disable", "0": "disable"}


_targets_lock = threading.Lock()
_targets: OrderedDict[TargetKey, Target] = OrderedDict()


def _key(host: Any, port: Any, database: Any) -> TargetKey:
    # The same rule as the span attributes (instrumentation/sqlalchemy.py): a port only with a host.
    host = str(host) if host else None
    return host, int(port) if host and port is not None else None, str(database) if database else None


def register_engine(dialect: Any, url: Any) -> None:
    """Remember how to reach a PostgreSQL engine's database (called once per engine)."""
    if getattr(dialect, "name", None) != "postgresql" or url is None:
        return
    options: dict[str, str] = {}
    for name, value in dict(url.query).items():
        text = value[-1] if isinstance(value, tuple) and value else value
        if not isinstance(text, str):
            continue
        if name in _LIBPQ_QUERY_KEYS:
            options[name] = text
        elif name == "ssl" and "sslmode" not in options:
            options["sslmode"] = _SSL_MODES.get(text.lower(), text)
    password = url.password
    target = Target(
        key=_key(url.host, url.port, url.database),
        host=url.host or None,
        port=int(url.port) if url.port is not None else None,
        database=url.database or None,
        user=url.username or None,
        password=None if password is None else str(password),
        options=tuple(sorted(options.items())),
    )
    with _targets_lock:
        _targets[target.key] = target
        _targets.move_to_end(target.key)
        while len(_targets) > MAX_TARGETS:
            _targets.popitem(last=False)


def clear_targets() -> None:
    """Forget every engine (the SQLAlchemy instrumentation calls this when it is removed)."""
    with _targets_lock:
        _targets.clear()


def target_for(attributes: Mapping[str, Any]) -> Target | None:
    key = _key(
        attributes.get(_names.SERVER_ADDRESS),
        attributes.get(_names.SERVER_PORT),
        attributes.get(_names.DB_NAMESPACE),
    )
    with _targets_lock:
        return _targets.get(key)


# --- which statements, and how they are written for PostgreSQL ------------------------------------

_STARTS_READ = re.compile(r"^\(*\s*(SELECT|WITH)\b", re.IGNORECASE)
# Any of these anywhere and the statement is not planned: it writes, locks, or is not one SELECT.
_NOT_READ_ONLY = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|INTO|CALL|COPY|LOCK|CREATE|DROP|ALTER|GRANT|REVOKE|"
    r"VACUUM|ANALYZE|EXPLAIN|PREPARE|EXECUTE|DEALLOCATE|NOTIFY|LISTEN|SHARE|NOWAIT)\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r'("(?:[^"]|"")*")|\?')


def explainable(normalized: str) -> bool:
    """Whether a normalized statement may be planned: one read-only SELECT (or WITH ... SELECT).

    >>> explainable("SELECT * FROM orders WHERE customer_id = ?")
    True
    >>> explainable("WITH d AS (DELETE FROM t RETURNING id) SELECT * FROM d")
    False
    """
    return (
        0 < len(normalized) <= MAX_STATEMENT_LENGTH
        and _STARTS_READ.match(normalized) is not None
        and "SELECT" in normalized.upper()
        and ";" not in normalized
        and not normalized.endswith("[truncated]")
        and _NOT_READ_ONLY.search(normalized) is None
    )


def positional(normalized: str) -> tuple[str, int]:
    """The statement with its ``?`` numbered as PostgreSQL parameters, and how many there are.

    >>> positional('SELECT "a?" FROM t WHERE x = ? AND y IN (?)')
    ('SELECT "a?" FROM t WHERE x = $1 AND y IN ($2)', 2)
    """
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(1) is not None:  # a quoted identifier: kept as written
            return match.group(1)
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, normalized), count


# --- reading a plan ---------------------------------------------------------------------------------

# Nodes that pass their one child's rows on: the headline looks through them.
_WRAPPERS = frozenset({
    "Limit", "Sort", "Incremental Sort", "Aggregate", "Gather", "Gather Merge", "Materialize",
    "Result", "Unique", "Hash", "Memoize", "WindowAgg", "SetOp", "LockRows", "ProjectSet",
})  # fmt: skip


@dataclass(frozen=True)
class PlanSummary:
    """What a generic plan says about a statement, in PostgreSQL's own words."""

    root: str  # the top node, e.g. "Limit"
    headline: str  # the first sequential scan, else the first node that does work: "Seq Scan on orders"
    seq_scans: tuple[str, ...] = ()  # relations read by a sequential scan, in plan order
    total_cost: float | None = None


def describe_node(node: Mapping[str, Any]) -> str:
    """A plan node as EXPLAIN's text format names it: ``Index Scan using orders_pkey on orders``."""
    kind = str(node.get("Node Type") or "?")
    if node.get("Parallel Aware") is True:
        kind = f"Parallel {kind}"
    relation = node.get("Relation Name")
    index = node.get("Index Name")
    alias = node.get("Alias")
    if index and relation:
        text = f"{kind} using {index} on {relation}"
    elif index:
        text = f"{kind} on {index}"
    elif relation:
        text = f"{kind} on {relation}"
    elif node.get("CTE Name"):
        return f"{kind} on {node['CTE Name']}"
    elif node.get("Function Name"):
        return f"{kind} on {node['Function Name']}"
    else:
        return kind
    return f"{text} {alias}" if relation and alias and alias != relation else text


def summarize_plan(raw: Any) -> PlanSummary | None:
    """The summary of ``EXPLAIN (FORMAT JSON)`` output (parsed, or the JSON text); None if empty."""
    if isinstance(raw, str | bytes | bytearray):
        raw = json.loads(raw)
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("Plan"), Mapping):
        return None
    root: Mapping[str, Any] = raw["Plan"]
    seq_scans: list[str] = []
    first_seq_scan: Mapping[str, Any] | None = None
    stack = [root]
    while stack:  # depth first, in plan order
        node = stack.pop()
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name"):
            first_seq_scan = first_seq_scan or node
            relation = str(node["Relation Name"])
            if relation not in seq_scans and len(seq_scans) < MAX_SEQ_SCANS:
                seq_scans.append(relation)
        children = node.get("Plans")
        if isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, Mapping)]))
    working = root
    while working.get("Node Type") in _WRAPPERS:
        children = working.get("Plans")
        if not isinstance(children, list) or len(children) != 1 or not isinstance(children[0], Mapping):
            break
        working = children[0]
    cost = root.get("Total Cost")
    return PlanSummary(
        root=describe_node(root),
        headline=describe_node(first_seq_scan if first_seq_scan is not None else working),
        seq_scans=tuple(seq_scans),
        total_cost=float(cost) if isinstance(cost, int | float) else None,
    )


# --- the worker --------------------------------------------------------------------------------------


@dataclass
class ExplainStats:
    requested: int = 0  # statements queued for EXPLAIN
    explained: int = 0  # EXPLAINs that returned a plan
    failed: int = 0  # EXPLAINs the database (or the connection) refused
    ineligible: int = 0  # slow statements that are not a plain SELECT (never explained)
    dropped: int = 0  # requests dropped because the queue was full (asked again later)
    overflow: int = 0  # requests not queued because MAX_SEEN shapes were already tried


@dataclass(frozen=True)
class ExplainResult:
    plan: PlanSummary | None
    backend_pid: int | None  # the explain connection's backend (never one of the app's)
    at: float


_Job = tuple[tuple[TargetKey, str], Target, str]  # ((target key, fingerprint), target, statement)


class ExplainWorker:
    """Plans slow SELECTs on a thread of its own; see the module docstring for its promises."""

    def __init__(
        self,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
        queue_size: int = QUEUE_SIZE,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        idle_exit_s: float = IDLE_EXIT_S,
        connect: Callable[[Target, int], Session] = connect,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.queue_size = queue_size
        self.statement_timeout_ms = statement_timeout_ms
        self.idle_exit_s = idle_exit_s
        self.connect = connect  # how a session is made (tests wrap it to watch what is sent)
        self.stats = ExplainStats()
        self._warning = _internal.RateLimitedWarning(logger)
        self._queue: deque[_Job] = deque()
        self._seen: set[tuple[TargetKey, str]] = set()
        self._results: OrderedDict[tuple[TargetKey, str], ExplainResult] = OrderedDict()
        self._next_at = 0.0
        self.after_fork()

    def after_fork(self) -> None:
        """New lock and no thread (a forked child has neither); what was explained stays known."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._busy = False
        self._pid = os.getpid()

    # --- the detector thread ---
    def plan_for(
        self, attributes: Mapping[str, Any], fingerprint: str, normalized: str
    ) -> PlanSummary | None:
        """The plan of this statement shape when known; else queue it (once) and return None. Never waits."""
        target = target_for(attributes)
        if target is None:
            return None
        key = (target.key, fingerprint)
        with self._lock:
            result = self._results.get(key)
            if result is not None:
                return result.plan
            if key in self._seen:
                return None
            if not explainable(normalized):
                self.stats.ineligible += 1
                return None
            if len(self._queue) >= self.queue_size:
                self.stats.dropped += 1
                return None
            if len(self._seen) >= MAX_SEEN:
                self.stats.overflow += 1
                return None
            self._seen.add(key)
            self._queue.append((key, target, normalized))
            self.stats.requested += 1
            self._ensure_thread()
            self._wake.notify()
        return None

    def result(self, target_key: TargetKey, fingerprint: str) -> ExplainResult | None:
        with self._lock:
            return self._results.get((target_key, fingerprint))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(min(left, 0.05))
        return True

    def _ensure_thread(self) -> None:
        # Under the lock. A forked child inherits the tables but not the thread: start afresh.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._thread = None
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="otelperf-explain", daemon=True)
            self._thread.start()

    # --- the worker thread ---
    def _run(self) -> None:
        token = otel_context.attach(otel_context.set_value(_SUPPRESS_KEY, True))
        try:
            while True:
                with self._lock:
                    idle_until = time.monotonic() + self.idle_exit_s
                    while not self._queue:
                        left = idle_until - time.monotonic()
                        if left <= 0:
                            self._thread = None
                            return
                        self._wake.wait(left)
                    wait = self._next_at - time.monotonic()
                    if wait > 0:
                        self._wake.wait(wait)  # the rate limit; a notify just loops back here
                        continue
                    job = self._queue.popleft()
                    self._busy = True
                try:
                    self._explain(job)
                except Exception as exc:  # never let the thread die
                    _internal.record_internal_error("explain.worker", exc)
                finally:
                    with self._lock:
                        self._busy = False
                        self._next_at = time.monotonic() + self.min_interval_s
                        self._wake.notify_all()
        finally:
            otel_context.detach(token)

    def _explain(self, job: _Job) -> None:
        key, target, normalized = job
        statement, parameters = positional(normalized)
        try:
            session = self.connect(target, self.statement_timeout_ms)
            try:
                raw, pid = explain(session, statement, parameters, f"otelperf_explain_{key[1]}")
            finally:
                session.close()
        except Exception as exc:
            # The database's answer, not a bug of ours: count it and say so now and then, with the
            # error's type only (messages can name the user, the host or the statement).
            self.stats.failed += 1
            code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
            self._warning.warn(
                "otelperf could not EXPLAIN a slow query (%s%s); the finding goes without a plan",
                type(exc).__qualname__,
                f", SQLSTATE {code}" if isinstance(code, str) else "",
            )
            self._store(key, ExplainResult(None, None, time.time()))
            return
        plan = summarize_plan(raw)
        self.stats.explained += 1
        self._store(key, ExplainResult(plan, pid, time.time()))

    def _store(self, key: tuple[TargetKey, str], result: ExplainResult) -> None:
        with self._lock:
            self._results[key] = result
            while len(self._results) > MAX_PLANS:
                self._results.popitem(last=False)


_shared: ExplainWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> ExplainWorker:
    """The process's one worker: the rate limit and "once per fingerprint" hold across detectors."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ExplainWorker()
        return _shared


if hasattr(os, "register_at_fork"):
    # A lock held by another thread at fork time would stay locked in the child forever.
    os.register_at_fork(after_in_child=lambda: _shared.after_fork() if _shared is not None else None)
