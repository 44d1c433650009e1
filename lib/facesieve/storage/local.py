"""Local-folder store: atomic writes by temp file + rename in the same directory.

Listing never stops at a strange entry and never hides one: named pipes, sockets and devices,
broken links, links that leave the root, names that are not UTF-8 and folders that cannot be
listed each come back as one ``ObjectInfo`` with a ``problem``, which the input reader turns into
that entry's row. Reads open files without blocking and check that they are regular files, so a
named pipe called ``x.jpg`` can never hang a job.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from facesieve.errors import StorageError
from facesieve.storage.base import ObjectInfo

# errno values worth retrying; every other OSError on a local file is that file's problem
_TRANSIENT_ERRNOS = {errno.EINTR, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE}

_KINDS = (
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _printable(name: str) -> tuple[str, bool]:
    """(name, ok): a name that is not valid UTF-8 comes back escaped (``caf\\xe9.jpg``)."""
    try:
        name.encode("utf-8")
        return name, True
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace"), False


class LocalStore:
    random_access = True  # open_read gives a regular, seekable file

    def __init__(self, root: str | os.PathLike[str], follow_external_links: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)
        # Links inside the root are read (datasets are often trees of links); links that lead
        # out of it are refused unless asked for: an input root should not read /etc.
        self.follow_external_links = follow_external_links

    def _path(self, key: str) -> Path:
        # Lexical check: '..' may not climb out; where links lead is checked on reading.
        path = Path(os.path.normpath(self.root / key)) if key else self.root
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"key {key!r} escapes the store root {self.root}")
        return path

    def _inside(self, path: str) -> bool:
        return self._under_root(os.path.realpath(path))

    def _under_root(self, real: str) -> bool:
        return real == self.root_uri or real.startswith(self.root_uri + os.sep)

    def _opened_inside(self, fd: int, path: Path) -> bool:
        """Whether an open file lies inside the root: where the descriptor really points (one
        ``readlink`` on Linux; ``realpath`` walked every component of every path and was 14 s
        of a million-face nightly run), so a link swapped after the check cannot fool it."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc (macOS): resolve the path instead
            return self._inside(str(path))
        return self._under_root(real)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def root_exists(self) -> bool:
        return self.root.is_dir()

    def _fail(self, action: str, key: str, exc: OSError) -> StorageError:
        transient = exc.errno in _TRANSIENT_ERRNOS
        return StorageError(
            f"cannot {action} {self.uri(key)}: {exc.strerror or exc}", transient, str(exc.errno)
        )

    # -- listing ---------------------------------------------------------------------------

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        if base.is_file():
            st = base.stat()
            yield ObjectInfo(prefix, st.st_size, str(st.st_mtime_ns))
            return
        if not base.is_dir():
            return
        found: list[ObjectInfo] = []
        seen = {(base.stat().st_dev, base.stat().st_ino)}
        stack = [base]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as exc:
                key = folder.relative_to(self.root).as_posix() + "/"
                found.append(
                    ObjectInfo(key, 0, "", f"cannot list this folder: {exc.strerror or exc}")
                )
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                info, descend = self._entry(folder, entry, seen)
                if descend is not None:
                    stack.append(descend)
                if info is not None:
                    found.append(info)
        yield from sorted(found, key=lambda o: o.key)

    def _entry(
        self, folder: Path, entry: os.DirEntry[str], seen: set[tuple[int, int]]
    ) -> tuple[ObjectInfo | None, Path | None]:
        """(listed entry or None, folder to descend into or None) for one directory entry."""
        name, printable = _printable(entry.name)
        key = (folder / name).relative_to(self.root).as_posix()
        if not printable:
            what = "folder" if entry.is_dir(follow_symlinks=False) else "file"
            return ObjectInfo(key, 0, "", f"{what} name is not valid UTF-8; not read"), None
        try:
            link = entry.is_symlink()
            if link and not os.path.exists(entry.path):
                return ObjectInfo(key, 0, "", "broken symbolic link"), None
            if link and not self.follow_external_links and not self._inside(entry.path):
                problem = "symbolic link leading outside the input root; not followed"
                return ObjectInfo(key, 0, "", problem + " (source.follow_external_links)"), None
            st = entry.stat(follow_symlinks=True)
        except OSError as exc:
            return ObjectInfo(key, 0, "", f"cannot read: {exc.strerror or exc}"), None
        if stat.S_ISDIR(st.st_mode):
            if link and self._inside(entry.path):
                problem = "link to a folder inside the input; its files are listed where they are"
                return ObjectInfo(key + "/", 0, "", problem), None
            ident = (st.st_dev, st.st_ino)
            if ident in seen:  # a link cycle, or a second link to a followed folder
                return ObjectInfo(key + "/", 0, "", "folder already listed (link cycle)"), None
            seen.add(ident)
            return None, Path(entry.path)
        if not stat.S_ISREG(st.st_mode):
            return ObjectInfo(key, 0, "", f"not a regular file ({_kind(st.st_mode)})"), None
        return ObjectInfo(key, st.st_size, str(st.st_mtime_ns)), None

    # -- reading -----------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _open(self, key: str) -> BinaryIO:
        """A regular file opened for reading; never blocks, never follows a link outward."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise self._fail("read", key, exc) from None
        if not self.follow_external_links and not self._opened_inside(fd, path):
            os.close(fd)
            raise StorageError(f"cannot read {path}: symbolic link leading outside the root")
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            os.close(fd)
            raise self._fail("read", key, exc) from None
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise StorageError(f"cannot read {path}: not a regular file ({_kind(mode)})")
        return os.fdopen(fd, "rb")

    def read_bytes(self, key: str) -> bytes:
        with self._open(key) as f:
            try:
                return f.read()
            except OSError as exc:
                raise self._fail("read", key, exc) from None

    def open_read(self, key: str) -> BinaryIO:
        return self._open(key)

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        data = self.read_bytes(key)
        return data, hashlib.sha256(data).hexdigest()

    # -- writing -----------------------------------------------------------------------------

    @staticmethod
    def _new_temp(path: Path) -> tuple[int, str]:
        """An open, empty temp file next to ``path``. Created with mode 0666 so that the kernel
        applies the user's umask (mkstemp's 0600 made every report unreadable to the colleagues
        and web servers the umask lets in)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(100):
            tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                return os.open(tmp, flags, 0o666), tmp
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temp file name", str(path.parent))

    def _temp(self, path: Path, data: bytes) -> str:
        """A complete, fsynced temp file next to ``path``."""
        fd, tmp = self._new_temp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            tmp = self._temp(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._fail("write", key, exc) from None

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A temp file beside ``key``, renamed over it when the block ends without an error."""
        path = self._path(key)
        try:
            fd, tmp = self._new_temp(path)
        except OSError as exc:
            raise self._fail("write", key, exc) from None
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise self._fail("write", key, exc) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """A hard link from a complete temp file: the file appears whole or not at all."""
        path = self._path(key)
        tmp = self._temp(path, data)
        try:
            os.link(tmp, path)
            return hashlib.sha256(data).hexdigest()
        except FileExistsError:
            return None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Compare and swap under an advisory lock on ``key``'s folder (every writer that swaps
        takes the same lock; the file itself is replaced by rename, so it cannot carry one)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = os.open(path.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            try:
                current = self.read_tagged(key)[1]
            except StorageError:
                return None
            if current != tag:
                return None
            self.write_bytes(key, data)
            return hashlib.sha256(data).hexdigest()
        finally:
            os.close(folder)

    def sweep_partial(self) -> int:
        """Delete temp files a killed writer left behind (``.NAME.*.tmp``); returns how many."""
        removed = 0
        if self.root.is_dir():
            for tmp in self.root.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise self._fail("delete", key, exc) from None
