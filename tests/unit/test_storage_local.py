import os
from pathlib import Path

import pytest

from facesieve.errors import StorageError
from facesieve.storage import LocalStore, open_store, parse_s3_uri
from facesieve.storage.s3 import S3Store


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("a/b/c.bin", b"x" * 10)
    store.write_bytes("a/b/c.bin", b"y" * 5)
    assert store.read_bytes("a/b/c.bin") == b"yyyyy"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["c.bin"]


def test_list_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for key in ["b/2.jpg", "a/1.jpg", "a/0.jpg", ".hidden/x.jpg", "a/.tmp"]:
        store.write_bytes(key, b"1")
    assert [o.key for o in store.list()] == ["a/0.jpg", "a/1.jpg", "b/2.jpg"]
    assert [o.key for o in store.list("a")] == ["a/0.jpg", "a/1.jpg"]
    assert all(o.size == 1 and o.tag for o in store.list())


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "root")
    with pytest.raises(StorageError, match="escapes"):
        store.write_bytes("../outside.bin", b"x")
    assert not (tmp_path / "outside.bin").exists()


def test_missing_file_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot read"):
        LocalStore(tmp_path).read_bytes("nope")


def test_s3_uris_parse_and_pickle_without_a_client() -> None:
    import pickle

    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    store = open_store("s3://bucket/pre", s3_endpoint="http://127.0.0.1:1")
    assert isinstance(store, S3Store) and store.uri("x/y.jpg") == "s3://bucket/pre/x/y.jpg"
    clone = pickle.loads(pickle.dumps(store))
    assert clone.root_uri == "s3://bucket/pre" and clone._client is None


def test_strange_entries_are_listed_with_a_problem_and_never_block(tmp_path: Path) -> None:
    import os

    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "a" / "ok.jpg").write_bytes(b"x")
    os.mkfifo(root / "a" / "pipe.jpg")
    (root / "a" / "inside.jpg").symlink_to(root / "a" / "ok.jpg")
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    (root / "a" / "outside.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "a" / "broken.jpg").symlink_to(root / "nowhere.jpg")
    (root / "again").symlink_to(root / "a")
    bad = os.fsencode(str(root / "a")) + b"/caf\xe9.jpg"
    with open(bad, "wb") as f:
        f.write(b"x")
    store = LocalStore(root)
    listed = {o.key: o.problem for o in store.list()}
    assert listed["a/ok.jpg"] is None and listed["a/inside.jpg"] is None
    assert "named pipe" in listed["a/pipe.jpg"]
    assert "outside the input root" in listed["a/outside.jpg"]
    assert listed["a/broken.jpg"] == "broken symbolic link"
    assert "inside the input" in listed["again/"]
    assert "not valid UTF-8" in listed["a/caf\\xe9.jpg"]
    with pytest.raises(StorageError, match="not a regular file"):
        store.read_bytes("a/pipe.jpg")  # returns at once instead of waiting for a writer
    with pytest.raises(StorageError, match="outside"):
        store.read_bytes("a/outside.jpg")
    assert LocalStore(root, follow_external_links=True).read_bytes("a/outside.jpg") == b"outside"
    assert {o.key for o in LocalStore(root, follow_external_links=True).list()} >= {"a/outside.jpg"}


def test_a_folder_that_cannot_be_listed_is_one_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"x")
    (tmp_path / "b" / "2.jpg").write_bytes(b"x")
    real = os.scandir

    def scandir(path):  # a stand-in for a folder without read permission (tests run as root)
        if str(path).endswith("/b"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    listed = {o.key: o.problem for o in LocalStore(tmp_path).list()}
    assert listed == {"a/1.jpg": None, "b/": "cannot list this folder: Permission denied"}


def test_create_exclusive_and_compare_and_swap(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    tag = store.create_exclusive("lock.json", b"one")
    assert tag and store.create_exclusive("lock.json", b"two") is None
    assert store.replace_if("lock.json", b"three", "not-the-tag") is None
    new = store.replace_if("lock.json", b"three", tag)
    assert new and store.read_tagged("lock.json") == (b"three", new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock.json"]  # no temp or mutex files


def test_a_link_swapped_to_the_outside_is_refused_after_opening(tmp_path: Path) -> None:
    """The check follows the opened descriptor, not a path resolved beforehand."""
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"outside")
    (root / "inside.jpg").write_bytes(b"inside")
    store = LocalStore(root)
    (root / "link.jpg").symlink_to(root / "inside.jpg")
    assert store.read_bytes("link.jpg") == b"inside"
    (root / "link.jpg").unlink()
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(StorageError, match="outside"):
        store.read_bytes("link.jpg")
    with pytest.raises(StorageError, match="No such file"):
        store.read_bytes("missing.jpg")


def test_streamed_write_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("t/a.tar", b"old")
    with pytest.raises(RuntimeError), store.open_write("t/a.tar") as f:
        f.write(b"new, half")
        raise RuntimeError("stopped")
    assert store.read_bytes("t/a.tar") == b"old"  # the old file stays, no temp file is left
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["a.tar"]
    with store.open_write("t/a.tar") as f:
        for _ in range(3):
            f.write(b"x" * 1000)
    assert store.read_bytes("t/a.tar") == b"x" * 3000
    umask = os.umask(0o022)
    os.umask(umask)
    mode = (tmp_path / "t" / "a.tar").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # a dataset file, not a private temp file (0600)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    """Reports must be readable by whoever the user's umask lets in (mkstemp made them 0600)."""
    import os
    import stat

    old = os.umask(umask)
    try:
        store = LocalStore(tmp_path)
        store.write_bytes("report/index.html", b"<html></html>")
        assert store.create_exclusive("_lock.json", b"{}") is not None
        tag = store.read_tagged("report/index.html")[1]
        assert store.replace_if("report/index.html", b"<html>2</html>", tag) is not None
    finally:
        os.umask(old)
    for key in ("report/index.html", "_lock.json"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == mode, key
    assert stat.S_IMODE((tmp_path / "report").stat().st_mode) == 0o777 & ~umask
    assert not list(tmp_path.rglob("*.tmp"))
