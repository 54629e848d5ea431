"""Upload files (multipart) and download them again, checking what comes back.

otelperf loadtest --scenario files --duration 60s --users 5
"""

from __future__ import annotations

import random

from _shop import ShopUser, file_content
from locust import task

SIZES = (4 * 1024, 64 * 1024, 512 * 1024)  # small, medium, large (the shop's limit is 5 MiB)


class FilesUser(ShopUser):
    def on_start(self) -> None:
        super().on_start()
        self.login()
        self.file_ids: list[int] = []

    def on_stop(self) -> None:
        self.logout()

    @task(1)
    def upload(self) -> None:
        content, digest = file_content(random.choice(SIZES))
        files = {"file": ("load.bin", content, "application/octet-stream")}
        with self.client.post(
            "/files", files=files, headers=self.auth, name="/files", catch_response=True
        ) as response:
            if response.status_code != 201 or response.json().get("sha256") != digest:
                response.failure(f"upload: {response.status_code} {response.text[:200]}")
                return
            self.file_ids = [*self.file_ids, response.json()["id"]][-50:]

    @task(3)
    def download(self) -> None:
        if not self.file_ids:
            return self.upload()
        with self.client.get(
            f"/files/{random.choice(self.file_ids)}", name="/files/{file_id}", catch_response=True
        ) as response:
            if response.status_code == 200 and not response.headers.get("ETag"):
                response.failure("download: no ETag")
