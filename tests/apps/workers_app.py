"""A tiny FastAPI app with a DB query, used by the zero-code (`otelperf run`) tests.

It does not import otelperf unless APP_CALLS_OTELPERF_INIT=1, which makes it call
``otelperf.init()`` itself too (to show that init() under an auto-instrumenter is idempotent).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from sqlalchemy import create_engine, text

if os.environ.get("APP_CALLS_OTELPERF_INIT") == "1":
    import otelperf

    otelperf.init()

app = FastAPI()
engine = create_engine("sqlite://")


@app.get("/pid/{tag}")
def pid(tag: str) -> dict[str, object]:
    with engine.connect() as conn:
        value = conn.execute(text("SELECT 1")).scalar()
    return {"pid": os.getpid(), "tag": tag, "value": value}
