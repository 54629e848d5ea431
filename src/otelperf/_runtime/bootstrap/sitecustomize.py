"""Loaded by every Python process started under ``otelperf run`` (it is first on PYTHONPATH).

It starts otelperf, then hands over to any ``sitecustomize`` the environment already had, so
``otelperf run`` composes with virtualenv tooling and other agents. Worker processes (uvicorn
``--workers``/``--reload`` spawn fresh interpreters; gunicorn forks) each get their own pipeline:
spawned ones run this file again, forked ones inherit it and the SDK restarts its export threads.
"""

import os
import sys


def _start_otelperf() -> None:
    if os.environ.get("OTELPERF_AUTO_INIT") != "1":
        return
    try:
        import otelperf

        otelperf.init()
    except Exception as exc:  # never stop the application from starting
        sys.stderr.write(f"otelperf: could not start, the application runs without it: {exc!r}\n")


def _chain_next_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    import importlib.util

    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_otelperf_chained_sitecustomize", candidate)
            if spec and spec.loader:
                try:
                    spec.loader.exec_module(importlib.util.module_from_spec(spec))
                except Exception as exc:
                    sys.stderr.write(f"otelperf: the chained sitecustomize {candidate} failed: {exc!r}\n")
            return


_start_otelperf()
_chain_next_sitecustomize()
