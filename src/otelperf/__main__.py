"""``python -m otelperf``: the same as the ``otelperf`` command (for when the script is not on PATH)."""

from __future__ import annotations

import sys

from otelperf.cli import main

if __name__ == "__main__":
    sys.exit(main())
