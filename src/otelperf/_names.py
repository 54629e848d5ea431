"""Every span attribute, event and metric name that otelperf itself emits.

Names otelperf invents carry the ``otelperf.`` prefix (``otelperf_`` in Prometheus). Everything else
is an OpenTelemetry semantic-convention name, spelled here once so the modules agree.
"""

from __future__ import annotations

INSTRUMENTATION_SCOPE = "otelperf"

# --- OpenTelemetry semantic conventions (stable HTTP, DB client) ---------------------------------
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
URL_SCHEME = "url.scheme"
URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_FULL = "url.full"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
CLIENT_ADDRESS = "client.address"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
USER_AGENT_ORIGINAL = "user_agent.original"
ERROR_TYPE = "error.type"
HTTP_REQUEST_HEADER_PREFIX = "http.request.header."
HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original"
ASGI_EVENT_TYPE = "asgi.event.type"  # on the opt-in "http send"/"http receive" spans

DB_SYSTEM_NAME = "db.system.name"
DB_SYSTEM_LEGACY = "db.system"
DB_QUERY_TEXT = "db.query.text"
DB_STATEMENT_LEGACY = "db.statement"
DB_OPERATION_NAME = "db.operation.name"
DB_COLLECTION_NAME = "db.collection.name"
DB_NAMESPACE = "db.namespace"
DB_RESPONSE_STATUS_CODE = "db.response.status_code"
# Call sites (the code.* semconv): the application code that ran a statement, command or call.
CODE_FILE_PATH = "code.file.path"
CODE_LINE_NUMBER = "code.line.number"
CODE_FUNCTION_NAME = "code.function.name"
EXCEPTION_EVENT = "exception"  # span event name of the OTel exception semconv
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"
EXCEPTION_ESCAPED = "exception.escaped"

# --- otelperf's own span attributes -------------------------------------------------------------
CACHE_NAME = "otelperf.cache.name"
CACHE_HIT = "otelperf.cache.hit"
CACHE_OPERATION = "otelperf.cache.operation"
CACHE_RESULT = "otelperf.cache.result"  # metric attribute: "hit" | "miss"
CACHE_HITS = "otelperf.cache.hits"  # multi-key reads (MGET/HMGET, pipelines): keys found
CACHE_MISSES = "otelperf.cache.misses"  # multi-key reads: keys not found
REDIS_PIPELINE_LENGTH = "otelperf.redis.pipeline_length"
COMPONENT = "otelperf.component"  # db | cache | http | app: used by the detectors' attribution
# A salted hash of a cache key (never the key: keys can carry secrets), for the miss-storm detector.
CACHE_KEY_HASH = "otelperf.cache.key_hash"
# Multi-key reads (MGET/HMGET, pipelines): the salted hashes of the keys that missed (at most 32).
CACHE_KEY_HASHES = "otelperf.cache.key_hashes"

# SQLAlchemy lazy loads: the relationship loaded ("Author.books") and the table of the rows it was
# loaded for (whose query the N+1 detector names as the one to change).
ORM_RELATIONSHIP = "otelperf.orm.relationship"
ORM_PARENT_TABLE = "otelperf.orm.parent_table"
ORM_LOAD = "otelperf.orm.load"  # "lazy" (attribute access) | "query" (an explicit query doing its work)

COMPONENT_DB = "db"
COMPONENT_CACHE = "cache"
COMPONENT_HTTP = "http"

# --- metric names (OTel semconv where one exists) -----------------------------------------------
METRIC_HTTP_SERVER_DURATION = "http.server.request.duration"
METRIC_HTTP_CLIENT_DURATION = "http.client.request.duration"
METRIC_DB_CLIENT_DURATION = "db.client.operation.duration"
METRIC_CACHE_REQUESTS = "otelperf.cache.requests"
METRIC_CACHE_HIT_RATIO = "otelperf.cache.hit_ratio"

# Bucket edges (seconds) for every latency histogram otelperf records. The OTel semconv advisory
# buckets, which already have 0.5 s as an edge so that a 500 ms budget is exact, not interpolated.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

# --- findings (detectors) -----------------------------------------------------------------------
FINDING_EVENT = "otelperf.finding"
FINDING_DETECTOR = "otelperf.finding.detector"
FINDING_SEVERITY = "otelperf.finding.severity"
FINDING_FINGERPRINT = "otelperf.finding.fingerprint"
FINDING_STATEMENT = "otelperf.finding.statement"
FINDING_COUNT = "otelperf.finding.count"
FINDING_DURATION_MS = "otelperf.finding.duration_ms"
FINDING_HINT = "otelperf.finding.hint"
# The ids (16 hex digits) of the spans a finding concerns, at most FINDING_SPAN_IDS_MAX of them:
# the waterfalls of the report and of `otelperf trace` highlight them.
FINDING_SPAN_IDS = "otelperf.finding.span_ids"
FINDING_SPAN_IDS_MAX = 100
FINDING_PLAN = "otelperf.finding.plan"  # slow PostgreSQL SELECTs: the generic plan's headline
# Expected findings (otelperf.expect() and [[expected]] in otelperf.toml): the finding event's reason.
FINDING_EXPECTED = "otelperf.finding.expected"
FINDINGS_COUNT = "otelperf.findings.count"
FINDINGS_DETECTORS = "otelperf.findings.detectors"
# The finding's call site as text ("app/routes.py:42 in list_authors()"); the event also carries
# the code.* attributes of it. N+1: the relationship (ORM), the query that loaded the parent rows.
FINDING_CALL_SITE = "otelperf.finding.call_site"
FINDING_RELATIONSHIP = "otelperf.finding.relationship"
FINDING_PARENT_STATEMENT = "otelperf.finding.parent_statement"
FINDING_PARENT_CALL_SITE = "otelperf.finding.parent_call_site"
FINDING_WINDOW_MS = "otelperf.finding.window_ms"  # N+1: first repeat's start to last one's end
METRIC_FINDINGS = (
    "otelperf.findings"  # Prometheus: otelperf_findings_total{detector,route,fingerprint,severity}
)
METRIC_FINDINGS_TIME = "otelperf.findings.time"  # ms of request time the findings account for
# Statements per finding summed (an N+1's repeats): / otelperf.findings = statements per request.
METRIC_FINDINGS_STATEMENTS = "otelperf.findings.statements"
# Bare attribute names on the findings metrics (Prometheus labels the rules select on):
# expected="true" only on expected findings (absent otherwise), so alerts select expected!="true".
FINDINGS_EXPECTED_LABEL = "expected"
SERVICE_VERSION = "service.version"  # also on the findings metrics (label service_version): lifecycle
# The span otelperf.expect() opens: the statements run inside it are the expected ones.
EXPECT_SPAN = "otelperf.expect"
EXPECT_DETECTOR = "otelperf.expect.detector"
EXPECT_FINGERPRINT = "otelperf.expect.fingerprint"  # optional narrowing
EXPECT_STATEMENT = "otelperf.expect.statement"  # optional: a substring of the sanitized statement
EXPECT_REASON = "otelperf.expect.reason"
# On the database spans of async engines (AsyncEngine/AsyncSession): the sequential_awaits detector
# looks only at those (a sync route's statements cannot be awaited concurrently).
DB_ASYNC = "otelperf.db.async"
METRIC_BUDGET_BREACHES = "otelperf.budget.breaches"  # {route, budget="request"|"db"|"cache"|"http"|"app"}
METRIC_REQUEST_BREAKDOWN = "otelperf.request.breakdown"  # seconds per {route, component}, every SERVER root
# Client side of a load test (otelperf.loadtest); Prometheus otelperf_loadtest_request_duration_seconds_*
METRIC_LOADTEST_DURATION = "otelperf.loadtest.request.duration"
LOADTEST_SCENARIO = "scenario"  # a bare attribute name: the dashboards select on the `scenario` label

# --- the sampling profiler (profiler/): on the latency-budget finding's event ----------------------
# "app 120 ms: 70 ms compute_discount (pricing.py:88), 30 ms in pydantic from create_order (...)"
FINDING_APP_PROFILE = "otelperf.finding.app_profile"
# ...and the same samples as folded stacks ("frame;frame;frame ms" lines, at most 4 KB): the flame graph
FINDING_APP_FOLDED = "otelperf.finding.app_profile.folded"

# --- delivery accounting (export/): the OTel semconv SDK self-metrics, plus the retry buffer ------
METRIC_SDK_PROCESSOR_SPAN_PROCESSED = "otel.sdk.processor.span.processed"  # error.type=queue_full|...
METRIC_SDK_PROCESSOR_QUEUE_SIZE = "otel.sdk.processor.span.queue.size"
METRIC_SDK_PROCESSOR_QUEUE_CAPACITY = "otel.sdk.processor.span.queue.capacity"
METRIC_SDK_EXPORTER_SPAN_EXPORTED = "otel.sdk.exporter.span.exported"  # error.type=<status>|rejected|...
METRIC_SDK_EXPORTER_SPAN_INFLIGHT = "otel.sdk.exporter.span.inflight"  # buffered for retry + being sent
METRIC_EXPORT_BUFFER_SIZE = "otelperf.export.buffer.size"  # bytes of encoded spans awaiting delivery
METRIC_EXPORT_BUFFER_CAPACITY = "otelperf.export.buffer.capacity"
OTEL_COMPONENT_TYPE = "otel.component.type"
OTEL_COMPONENT_NAME = "otel.component.name"
