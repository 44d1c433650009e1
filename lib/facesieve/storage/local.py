"""Local-folder store: atomic writes by temp file + rename in the same directory."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from facesieve.errors import StorageError
from facesieve.storage.base import ObjectInfo


class LocalStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def _path(self, key: str) -> Path:
        # Lexical check: '..' may not climb out, but symlinks inside the root may point anywhere
        # (datasets are often trees of links).
        path = Path(os.path.normpath(self.root / key)) if key else self.root
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} escapes the store root {self.root}")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        if base.is_file():
            st = base.stat()
            yield ObjectInfo(prefix, st.st_size, str(st.st_mtime_ns))
            return
        if not base.is_dir():
            return
        found = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except OSError:  # dangling link: list it, reading it will report the error
                    st = None
                key = full.relative_to(self.root).as_posix()
                found.append(
                    ObjectInfo(key, st.st_size if st else 0, str(st.st_mtime_ns) if st else "")
                )
        yield from sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {self.uri(key)}: {exc.strerror or exc}") from exc

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except OSError as exc:
            raise StorageError(f"cannot open {self.uri(key)}: {exc.strerror or exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def sweep_partial(self) -> int:
        """Delete temp files a killed writer left behind (``.NAME.*.tmp``); returns how many."""
        removed = 0
        if self.root.is_dir():
            for tmp in self.root.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
