"""``shop``: a small but realistic FastAPI service for otelperf's performance tests.

It deliberately contains the bottlenecks otelperf is built to find:

* ``GET /orders``          a genuine N+1 (one query for the orders, one more per order for its items)
* ``GET /orders-eager``    the same data with ``selectinload`` (two queries), the fix
* ``GET /reports/search``  ``LIKE '%q%'`` plus ``ORDER BY`` on unindexed columns of a growing table
* ``POST /login``          CPU-bound password hashing (PBKDF2)
* ``GET /products/{id}/price``  a hot read behind Redis (``REDIS_URL``) or an in-process TTL cache
* ``GET /inventory/{id}``  an outgoing httpx call (to this same app by default)

Run it with ``uvicorn examples.shop.app:app`` or ``python -m examples.shop``; instrument it with
``otelperf run -- uvicorn examples.shop.app:app`` (no code change). The service does not import
otelperf, except when ``SHOP_OTELPERF_INIT=1`` asks for the code-mode demo.

Configuration (environment): ``DATABASE_URL`` (default: SQLite file ``examples/shop.db``),
``REDIS_URL``, ``SHOP_SEED_ORDERS``, ``SHOP_INVENTORY_URL``, ``SHOP_PASSWORD_ITERATIONS``,
``SHOP_PRICE_TTL``; see :mod:`examples.shop.config`.
"""
