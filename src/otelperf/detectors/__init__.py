"""In-process detectors: they read each finished request's spans and report what slowed it down.

Map: :mod:`._api` (``Finding``, ``TraceView``, the ``Detector`` protocol), :mod:`._pipeline` (the
span processor that groups a request's spans and hands them to the detectors off the app's
thread), :mod:`._findings` (where findings go: span events, metrics, a log line, ``findings()``),
and one module per detector.
"""
