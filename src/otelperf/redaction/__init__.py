"""Everything otelperf does so that secrets never leave the process."""
