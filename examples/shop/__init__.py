"""``shop``: a small but realistic FastAPI service for otelperf's performance tests.

It deliberately contains the bottlenecks otelperf is built to find:

* ``GET /orders``          a genuine N+1 (one query for the orders, one more per order for its items)
* ``GET /orders-eager``    the same data with ``selectinload`` (two queries), the fix
* ``GET /reports/search``  ``LIKE '%q%'`` plus ``ORDER BY`` on unindexed columns of a growing table
* ``POST /login``          CPU-bound password hashing (PBKDF2)
* ``GET /products/{id}/price``  a hot read behind Redis (``REDIS_URL``) or an in-process TTL cache
* ``GET /inventory/{id}``  an outgoing httpx call (to this same app by default)
* ``GET /inventory/{id}/movements``  a slow query: a product's stock history from the big stock
  ledger, filtered on the unindexed ``stock_movements.product_id`` (``SHOP_SEED_STOCK_MOVEMENTS``
  rows; PostgreSQL takes over 100 ms from about 2,000,000)
* ``GET /catalog``         a Redis N+1: a page of products, each price read with its own ``GET``
* ``GET /catalog-batched`` the same page with one ``MGET``, the fix
* ``GET /inventory``       an outgoing-HTTP N+1: one call to the stock service per product on the page

Run it with ``uvicorn examples.shop.app:app`` or ``python -m examples.shop``; instrument it with
``otelperf run -- uvicorn examples.shop.app:app`` (no code change). The service does not import
otelperf, except when ``SHOP_OTELPERF_INIT=1`` asks for the code-mode demo.

Configuration (environment): ``DATABASE_URL`` (default: SQLite file ``examples/shop.db``),
``REDIS_URL``, ``SHOP_SEED_ORDERS``, ``SHOP_SEED_STOCK_MOVEMENTS``, ``SHOP_INVENTORY_URL``,
``SHOP_PASSWORD_ITERATIONS``, ``SHOP_PRICE_TTL``; see :mod:`examples.shop.config`.
"""
