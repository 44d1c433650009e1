"""A progress bar with shards, images and images/s (stderr; silent when not a terminal)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(
        self, total_shards: int, total_images: int | None, enabled: bool | None = None
    ) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.perf_counter()
        self.images = 0
        self.shards_done = 0
        self.total_shards = total_shards
        self._bar = tqdm(
            total=total_images if total_images else total_shards,
            unit="img" if total_images else "shard",
            disable=not show,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._by_images = bool(total_images)

    def add_images(self, n: int) -> None:
        self.images_done(self.images + n)

    def images_done(self, total_images_so_far: int) -> None:
        """Set the running image count (monotone; workers report it per chunk)."""
        delta = max(0, total_images_so_far - self.images)
        self.images += delta
        if self._by_images:
            self._bar.update(delta)
        self._refresh()

    def shard_done(self) -> None:
        self.shards_done += 1
        if not self._by_images:
            self._bar.update(1)
        self._refresh()

    def rate(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.images / elapsed if elapsed > 0 else 0.0

    def _refresh(self) -> None:
        shards = f"{self.shards_done}/{self.total_shards}"
        text = f"shards {shards} images {self.images} ({self.rate():.1f}/s)"
        self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        self._bar.close()
