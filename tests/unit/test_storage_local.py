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
