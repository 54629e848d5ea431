"""``python -m otelperf.cli``: the same as the ``otelperf`` command."""

from __future__ import annotations

import sys

from otelperf.cli import main

if __name__ == "__main__":
    sys.exit(main())
