"""Which of a step's Ray workers may take a unit: the bookkeeping behind ``RayBackend``.

A worker slot is ``loading`` (its actor is starting or running the step's setup), ``ready``
(set up, idle) or ``busy`` (running a unit). Only a ready slot is given a unit. That rule is what
keeps a run going when a node is lost: the lost workers are replaced, and a replacement the
cluster has no room for any more stays ``loading`` (a pending actor) instead of holding a unit
that would wait on it until ``run.unit_timeout_s`` (an hour by default), while the workers left
take every unit. When no slot has been ready or busy for ``start_timeout_s`` the step is stuck
(every node with room for its workers is gone): ``stuck`` says so, and the backend raises
instead of waiting without end.

Pure: no Ray here, so the rules are unit-tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOADING, READY, BUSY = "loading", "ready", "busy"


@dataclass
class Slot:
    state: str = LOADING
    where: dict[str, Any] = field(default_factory=dict)  # the worker's node, host and pid


class Slots:
    """The states of ``n`` worker slots, and the last time any of them could work."""

    def __init__(self, n: int, start_timeout_s: float, now: float) -> None:
        self.slots = [Slot() for _ in range(n)]
        self.start_timeout_s = start_timeout_s
        self._usable_at = now  # the last time some slot was ready or busy (or the start)

    def __len__(self) -> int:
        return len(self.slots)

    def state(self, w: int) -> str:
        return self.slots[w].state

    def where(self, w: int) -> dict[str, Any]:
        return self.slots[w].where

    def loading(self) -> list[int]:
        return [w for w, s in enumerate(self.slots) if s.state == LOADING]

    def loaded(self, w: int, where: dict[str, Any], now: float) -> None:
        """The worker finished its setup and may take units."""
        self.slots[w] = Slot(READY, dict(where))
        self._usable_at = now

    def lost(self, w: int) -> None:
        """The worker died or was stopped; its replacement is loading."""
        self.slots[w] = Slot()

    def take(self) -> int:
        """A ready slot, now busy; ValueError when none is ready (check ``free`` first)."""
        for w, slot in enumerate(self.slots):
            if slot.state == READY:
                slot.state = BUSY
                return w
        raise ValueError("no ready worker")

    def finished(self, w: int) -> None:
        """The worker's unit ended (either way) and the worker lives: ready again."""
        if self.slots[w].state == BUSY:
            self.slots[w].state = READY

    def free(self) -> bool:
        return any(s.state == READY for s in self.slots)

    def busy(self) -> bool:
        return any(s.state == BUSY for s in self.slots)

    def stuck(self, now: float) -> bool:
        """No slot has been ready or busy for ``start_timeout_s``: nothing can run."""
        if any(s.state != LOADING for s in self.slots):
            self._usable_at = now
            return False
        return now - self._usable_at > self.start_timeout_s
