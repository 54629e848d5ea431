"""Example services instrumented by otelperf, and load generators for them."""
