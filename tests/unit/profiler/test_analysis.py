"""From samples to the finding's words: app time only, innermost application frame, libraries, caps."""

from __future__ import annotations

import json
import os
from types import CodeType

from otelperf.profiler._code import classify
from otelperf.profiler._sampler import RequestSamples, _intern
from otelperf.profiler.analysis import MAX_FOLDED_BYTES, analyze, fold

MS = 1_000_000
HERE = os.path.basename(__file__)


def compute_discount() -> None:
    pass


def create_order() -> None:
    pass


def frame(code: CodeType, line: int) -> int:
    return _intern((code, line))


JSON_CODE = json.dumps.__code__  # the standard library: a "library" frame named json
DISCOUNT = frame(compute_discount.__code__, 88)
ORDER = frame(create_order.__code__, 42)
IN_JSON = frame(JSON_CODE, JSON_CODE.co_firstlineno + 1)


def record(*samples: tuple[int, int, tuple[int, ...]]) -> RequestSamples:
    """Samples as (time ms, weight ms, stack innermost first)."""
    r = RequestSamples(1, 0)
    r.start_samples()
    for t, w, stack in samples:
        r.times.append(t * MS)
        r.weights.append(w * MS)
        r.stack_ids.append(r.stacks.setdefault(stack, len(r.stacks)))
    return r


def test_app_time_goes_to_the_innermost_application_frame_and_the_library_it_called() -> None:
    r = record(
        *[(t, 10, (DISCOUNT, ORDER)) for t in (10, 20, 30, 40, 50, 60, 70)],  # 70 ms in compute_discount
        *[(t, 10, (IN_JSON, ORDER)) for t in (80, 90, 100)],  # 30 ms in json, called by create_order
    )
    profile = analyze(r, start_ns=0, end_ns=120 * MS, app_ms=120.0)
    assert profile is not None
    assert [(f.function, f.line, f.library, round(f.ms)) for f in profile.functions] == [
        ("compute_discount", 88, None, 70),
        ("create_order", 42, "json", 30),
    ]
    assert profile.summary() == (
        f"app 120 ms: 70 ms compute_discount ({HERE}:88), 30 ms in json from create_order ({HERE}:42), "
        "20 ms not sampled"
    )
    assert profile.folded.splitlines() == [
        f"create_order ({HERE}:42);compute_discount ({HERE}:88) 70.0",
        f"create_order ({HERE}:42);json 30.0",
    ]


def test_samples_inside_db_cache_http_spans_are_not_app_time() -> None:
    # A query from 30 to 60 ms: the sample at 40 and 50 is the query's; the one at 70 stood for
    # 60..70 only (its interval began inside the query at 55).
    r = record((20, 10, (DISCOUNT,)), (40, 10, (DISCOUNT,)), (50, 10, (DISCOUNT,)), (70, 15, (DISCOUNT,)))
    profile = analyze(r, start_ns=0, end_ns=100 * MS, app_ms=70.0, elsewhere=[(30 * MS, 60 * MS)])
    assert profile is not None
    assert profile.samples == 2
    assert profile.sampled_ms == 20.0
    assert [round(f.ms) for f in profile.functions] == [20]


def test_samples_are_never_more_than_the_app_time() -> None:
    r = record(*[(t, 10, (DISCOUNT,)) for t in (10, 20, 30, 40)])  # 40 ms of samples...
    profile = analyze(r, start_ns=0, end_ns=40 * MS, app_ms=35.0)  # ...of 35 ms of app time
    assert profile is not None
    assert profile.sampled_ms == 35.0 and profile.functions[0].ms == 35.0
    assert profile.summary() == f"app 35 ms: 35 ms compute_discount ({HERE}:88)"


def test_no_samples_left_is_no_profile() -> None:
    r = record((40, 10, (DISCOUNT,)))
    assert analyze(r, start_ns=0, end_ns=100 * MS, app_ms=50.0, elsewhere=[(0, 100 * MS)]) is None
    assert analyze(RequestSamples(1, 0), start_ns=0, end_ns=100 * MS, app_ms=50.0) is None


def test_folded_stacks_are_bounded_in_bytes() -> None:
    many = [frame(compute_discount.__code__, line) for line in range(1000, 1600)]
    r = record(*[(t + 1, 1, (many[t], ORDER)) for t in range(600)])
    profile = analyze(r, start_ns=0, end_ns=700 * MS, app_ms=600.0)
    assert profile is not None
    assert len(profile.folded.encode()) <= MAX_FOLDED_BYTES
    last = profile.folded.splitlines()[-1]
    assert last.startswith("(other stacks) ")
    total = sum(float(line.rpartition(" ")[2]) for line in profile.folded.splitlines())
    assert round(total) == 600  # nothing lost: what did not fit is in "(other stacks)"


def test_fold_collapses_library_runs_and_drops_the_stdlib_at_the_root() -> None:
    asyncio_code = __import__("asyncio").sleep.__code__
    stack = (IN_JSON, DISCOUNT, frame(asyncio_code, asyncio_code.co_firstlineno))  # innermost first
    assert fold(stack) == f"compute_discount ({HERE}:88);json"


def test_what_counts_as_application_code() -> None:
    assert classify(__file__) == (None, False)
    assert classify(json.__file__) == ("json", True)
    import fastapi

    assert classify(fastapi.__file__) == ("fastapi", False)
    import otelperf

    assert classify(otelperf.__file__)[0] == "otelperf"
    assert classify("<frozen importlib._bootstrap>") == ("importlib", True)
