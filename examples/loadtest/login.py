"""Login/logout under a ramp: 1 user, then 10, then 50, then back to 0.

    otelperf loadtest --scenario login --duration 60s --users 50

The ramp's stages scale with ``--run-time`` and ``--users`` (the peak); PBKDF2 makes each login
cost tens of milliseconds of CPU, so this is the scenario that finds the login capacity.
"""

from __future__ import annotations

from _shop import ShopUser
from locust import LoadTestShape, task


class LoginLogoutUser(ShopUser):
    @task
    def login_logout(self) -> None:
        if self.login():
            self.client.get("/products", params={"limit": 10}, name="/products")
            self.logout()


class RampShape(LoadTestShape):
    """1 -> peak/5 -> peak -> 0 users: (share of the run at which a stage ends, users then)."""

    use_common_options = True  # --users is the peak, --run-time the whole ramp
    stages = ((0.1, 0.02), (0.35, 0.2), (0.8, 1.0), (1.0, 0.0))

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        run_time = float(getattr(options, "run_time", None) or 60)
        peak = int(getattr(options, "num_users", None) or 50)
        elapsed = self.get_run_time()
        if elapsed >= run_time:
            return None
        previous_end, previous_users = 0.0, 1
        for end, share in self.stages:
            users = max(1, round(peak * share)) if share else 0
            if elapsed < end * run_time:
                stage_s = max(0.5, (end - previous_end) * run_time)
                return users, max(1.0, abs(users - previous_users) / stage_s)
            previous_end, previous_users = end, users
        return None
