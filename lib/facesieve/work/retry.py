"""How failures are sorted and how long to wait before trying again.

Measured: a 30 s SeaweedFS restart failed 8 of 10 shards when retries followed at once, because
each S3 request gives up after about 8 s of boto3's own retries. Units are therefore retried
with exponential backoff (5, 10, 20, 40 s by default: over a minute in all), and the driver's own
writes (markers, ledger, manifest) go through the same policy.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from facesieve.errors import ConfigError, LockError, ModelError, StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")

FATAL, PERMANENT, TRANSIENT = "fatal", "permanent", "transient"


def classify(exc: BaseException) -> str:
    """``fatal``: the same for every unit, stop the run (bad config, missing model, lost lock);
    ``permanent``: this unit cannot succeed by waiting (access denied, no such bucket);
    ``transient``: anything else, retried with backoff (network, 5xx, timeouts, a dead worker).
    """
    if isinstance(exc, (ConfigError, ModelError, LockError)):
        return FATAL
    if isinstance(exc, StorageError):
        return TRANSIENT if exc.transient else PERMANENT
    return TRANSIENT


@dataclass(frozen=True)
class Backoff:
    base_s: float = 5.0
    max_s: float = 60.0
    # up to +25%, never less: workers that failed together do not retry together, and the
    # waits before the 5th attempt add up to at least 75 s, more than a minute of outage
    jitter: float = 0.25

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        raw = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return raw * random.uniform(1.0, 1.0 + self.jitter)


def with_retries(fn: Callable[[], T], what: str, backoff: Backoff, retries: int) -> T:
    """Call ``fn``; on a transient ``StorageError`` wait and try again, up to ``retries`` times."""
    for attempt in range(1, retries + 2):
        try:
            return fn()
        except StorageError as exc:
            if not exc.transient or attempt > retries:
                raise
            wait = backoff.delay(attempt)
            log.warning("%s failed (%s); trying again in %.0f s", what, exc, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
