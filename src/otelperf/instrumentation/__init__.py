"""One module per instrumented library. Each is imported lazily, only when its library is present."""
