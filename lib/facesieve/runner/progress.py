"""Progress of one step: a bar on a terminal, periodic log lines everywhere else.

Nightly jobs run under cron, Kubernetes or ``ray job submit``, where stderr is a log file, not a
terminal: there a line like ``embed: 12/40 units, 5,210/20,000 images, 87.1 images/s, ETA 2m50s``
is logged every ``run.progress_interval_s`` seconds (logger ``facesieve.progress``, INFO). On a
terminal a tqdm bar shows the same. The executor creates the progress only once its workers are
up, so nobody watches a bar stuck at 0% while Ray starts.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("facesieve.progress")


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``."""
    s = round(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    def __init__(
        self,
        step: str,
        units: int,
        items: int,
        item_name: str,
        interval_s: float = 30.0,
        terminal: bool | None = None,
    ) -> None:
        """``items`` is the total weight of the units to run (0 when unknown, e.g. tar shards:
        progress then counts units)."""
        self.step, self.units, self.total, self.item_name = step, units, items, item_name
        self.interval_s = interval_s
        self.done_units = 0
        self.done_items = 0
        self.started = time.monotonic()
        self._last_log = self.started
        bar = sys.stderr.isatty() if terminal is None else terminal
        by_items = items > 0
        self._bar = tqdm(
            total=items if by_items else units,
            unit=item_name if by_items else "unit",
            desc=step,
            disable=not bar,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._by_items = by_items
        log.info(
            "%s: %d units to run%s",
            step,
            units,
            f" ({items:,} {item_name})" if by_items else "",
        )

    def add_items(self, n: int) -> None:
        self.items_done(self.done_items + n)

    def items_done(self, count: int) -> None:
        """Set the running item count (monotone: workers report it as they go)."""
        delta = max(0, count - self.done_items)
        if not delta:
            return
        self.done_items += delta
        if self._by_items:
            self._bar.update(delta)
        self.tick()

    def unit_done(self) -> None:
        self.done_units += 1
        if not self._by_items:
            self._bar.update(1)
        self._bar.set_postfix_str(f"units {self.done_units}/{self.units}", refresh=False)
        self.tick()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done_items / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """``embed: 12/40 units, 5,210/20,000 images, 87.1 images/s, ETA 2m50s``."""
        parts = [f"{self.step}: {self.done_units}/{self.units} units"]
        elapsed = time.monotonic() - self.started
        if self._by_items:
            parts.append(f"{self.done_items:,}/{self.total:,} {self.item_name}")
            rate = self.rate()
            parts.append(f"{rate:.1f} {self.item_name}/s")
            if rate > 0 and self.done_items < self.total:
                parts.append(f"ETA {duration((self.total - self.done_items) / rate)}")
        elif self.done_units and self.done_units < self.units:
            per_unit = elapsed / self.done_units
            parts.append(f"ETA {duration((self.units - self.done_units) * per_unit)}")
        parts.append(f"elapsed {duration(elapsed)}")
        return ", ".join(parts)

    def tick(self) -> None:
        """Log a progress line when the interval has passed (the executor calls it while it
        waits, so a long unit without item updates still shows it is alive)."""
        now = time.monotonic()
        if now - self._last_log >= self.interval_s:
            self._last_log = now
            if self._bar.disable:
                log.info("%s", self.line())

    def close(self) -> None:
        self._bar.close()
        log.info("%s", self.line())
