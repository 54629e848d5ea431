"""otelperf's lifecycle: the forwarding global providers, fork handling, logging at exit.

``_setup.py`` builds the pipeline; what keeps it right across ``init()``/``shutdown()``, ``fork()``
and interpreter exit lives here.
"""
