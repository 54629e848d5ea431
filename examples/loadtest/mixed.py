"""Concurrent users of every kind at once, in the proportions of a real shop: mostly browsing.

    otelperf loadtest --scenario mixed --duration 60s --users 20

The default scenario of ``otelperf loadtest`` and of ``otelperf baseline``.
"""

from __future__ import annotations

from crud import CrudUser
from endpoints import EndpointsUser
from files import FilesUser
from login import LoginLogoutUser

# Locust spreads --users over the classes by weight: 20 users = 14 browsing, 3 CRUD, 2 login, 1 files.
EndpointsUser.weight = 14
CrudUser.weight = 3
LoginLogoutUser.weight = 2
FilesUser.weight = 1

__all__ = ["CrudUser", "EndpointsUser", "FilesUser", "LoginLogoutUser"]
