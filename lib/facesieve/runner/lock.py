"""One run at a time per output root: a lock with a lease, on a local folder or on S3.

``OUT/_lock.json`` names its holder (run id, host, pid, command) and when its lease ends. It is
created with an exclusive write (a hard link locally, ``If-None-Match: *`` on S3) and renewed
every third of the lease by compare-and-swap (a mutex file locally, ``If-Match: ETag`` on S3),
so exactly one run holds it. A second run is refused with a message naming the holder. A lease
left by a killed run expires ``run.lease_s`` after its last renewal (at once when the holder ran
on this host and its process is gone); the next run then takes it over, again by
compare-and-swap. A run that finds its lease taken stops at the next unit (``check``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from facesieve.errors import LockError, StorageError
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

LOCK_KEY = "_lock.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


class Lease:
    def __init__(self, out: Store, ttl_s: float, command: str) -> None:
        self.out, self.ttl_s, self.command = out, ttl_s, command
        self.run_id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self._tag: str | None = None
        self._lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        return json.dumps(
            {
                "run_id": self.run_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "command": self.command,
                "started_at": self.started,
                "expires_at": time.time() + self.ttl_s,
            }
        ).encode()

    def _stale(self, holder: dict[str, Any]) -> bool:
        if float(holder.get("expires_at", 0)) < time.time():
            return True
        same_host = holder.get("host") == socket.gethostname()
        return same_host and not _alive(int(holder.get("pid", 0)))

    def acquire(self) -> Lease:
        self._tag = self.out.create_exclusive(LOCK_KEY, self._body())
        if self._tag is None:
            data, tag = self.out.read_tagged(LOCK_KEY)
            try:
                holder = json.loads(data)
            except ValueError:
                holder = {}
            if not self._stale(holder):
                raise LockError(
                    f"another facesieve run is writing to {self.out.root_uri}: "
                    f"{holder.get('command', '?')} (run {holder.get('run_id', '?')}, pid "
                    f"{holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                    f"{_when(float(holder.get('started_at', 0)))}). Wait for it to finish; if it "
                    f"was killed, its lease expires at "
                    f"{_when(float(holder.get('expires_at', 0)))}"
                )
            log.warning(
                "taking over the lock of run %s on %s (its lease had expired or its process is "
                "gone)",
                holder.get("run_id", "?"),
                self.out.root_uri,
            )
            self._tag = self.out.replace_if(LOCK_KEY, self._body(), tag)
            if self._tag is None:
                raise LockError(f"another run took the lock of {self.out.root_uri} just now")
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                tag = self.out.replace_if(LOCK_KEY, self._body(), self._tag or "")
            except StorageError as exc:  # an outage: try again at the next tick
                log.warning("could not renew the lock of %s: %s", self.out.root_uri, exc)
                continue
            if tag is None:
                self._lost = True
                log.error("the lock of %s was taken by another run", self.out.root_uri)
                return
            self._tag = tag

    def check(self) -> None:
        """Raise when another run took the lock (this run stalled past its lease)."""
        if self._lost:
            raise LockError(
                f"this run lost its lock on {self.out.root_uri} to another run; stopping"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._lost or self._tag is None:
            return
        try:
            _, tag = self.out.read_tagged(LOCK_KEY)
            if tag == self._tag:
                self.out.delete(LOCK_KEY)
        except StorageError as exc:
            log.warning("could not release the lock of %s: %s", self.out.root_uri, exc)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
