"""One rule for "your code": call sites and the profiler agree, file by file."""

from __future__ import annotations

import json
import os

import fastapi

import otelperf
from otelperf._code_origin import classify
from otelperf.instrumentation._callsite import is_library
from otelperf.profiler import _code


def test_whose_code_each_file_is() -> None:
    assert classify(json.__file__) == ("json", True)
    assert classify(fastapi.__file__) == ("fastapi", False)
    assert classify(otelperf.__file__) == ("otelperf", False)
    assert classify(__file__) == (None, False)  # the application's (here: the tests')
    assert classify("<string>")[0] is not None and classify("")[0] is not None  # generated code


def test_call_sites_and_the_profiler_use_the_same_rule() -> None:
    files = [json.__file__, fastapi.__file__, otelperf.__file__, __file__, "<string>", os.__file__]
    for name in files:
        assert is_library(name) == (classify(name)[0] is not None), name
        assert _code.classify(name) == classify(name), name
