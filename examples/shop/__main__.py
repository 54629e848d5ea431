"""``python -m examples.shop``: serve the shop on 127.0.0.1:8000 (``SHOP_HOST``/``SHOP_PORT``)."""

from __future__ import annotations

import os

import uvicorn


def main() -> None:
    uvicorn.run(
        "examples.shop.app:app",
        host=os.environ.get("SHOP_HOST", "127.0.0.1"),
        port=int(os.environ.get("SHOP_PORT", "8000")),
    )


if __name__ == "__main__":
    main()
