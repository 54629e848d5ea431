"""Step 8: the HTML report of the run (``otelperf report --html``)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from examples.shop.tour.common import BIN, BUDGETS_FILE, REPORT_HTML, ROOT, prometheus, say


def write_html_report(start: float) -> bool:
    say()
    command = [str(BIN / "otelperf"), "report", "--html", str(REPORT_HTML), "--prometheus", prometheus.url]
    command += ["--budgets", str(BUDGETS_FILE), "--start", f"{start:.0f}", "--end", f"{time.time():.0f}"]
    print("== HTML report of the run ==")
    print("   " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)))
    REPORT_HTML.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).strip().splitlines():
        print("   " + line)
    if result.returncode == 0:
        print(f"   open it: file://{REPORT_HTML}")
    else:
        say(f"WARNING: `otelperf report --html` exited with status {result.returncode}")
    return result.returncode == 0
