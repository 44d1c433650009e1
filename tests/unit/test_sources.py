import io
import json
import tarfile
from pathlib import Path

import pytest

from facesieve import schema
from facesieve.errors import ConfigError
from facesieve.sources import detect_layout, iter_records, list_shards
from facesieve.storage import LocalStore
from facesieve.storage.base import ObjectInfo


def _infos(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(k, 1, "t") for k in keys]


def test_layout_detection() -> None:
    assert detect_layout(_infos("a.tar", "b.tar")) == "webdataset"
    assert detect_layout(_infos("alice/1.jpg", "bob/2.png", "bob/notes.txt")) == "folders"
    assert detect_layout(_infos("1.jpg", "trip/2.jpg")) == "flat"
    assert detect_layout(_infos("2024/june/1.jpg")) == "flat"
    with pytest.raises(ConfigError):
        detect_layout([])


def test_folder_shards_are_deterministic_and_cover_every_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(7):
        store.write_bytes(f"p{i % 3}/{i}.jpg", b"x")
    store.write_bytes("p0/readme.txt", b"x")
    a = list_shards(store, "auto", shard_size=3)
    b = list_shards(LocalStore(tmp_path), "auto", shard_size=3)
    assert [s.shard_id for s in a] == [s.shard_id for s in b]
    assert len({s.shard_id for s in a}) == 3
    assert sorted(k for s in a for k in s.keys) == sorted(o.key for o in store.list())
    # replacing a file changes only the digest of the shard that holds it
    before = {s.shard_id: s.content_digest for s in a}
    store.write_bytes("p2/8.jpg", b"new file")
    after = {s.shard_id: s.content_digest for s in list_shards(store, "auto", shard_size=3)}
    changed = [sid for sid in before if before[sid] != after.get(sid)]
    assert len(changed) >= 1 and len(changed) < len(before) + 1


def test_folder_records_carry_labels_and_reject_non_images(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("alice/1.jpg", b"jpegbytes")
    store.write_bytes("alice/notes.txt", b"hello")
    store.write_bytes("bob/big.png", b"x" * 100)
    (shard,) = list_shards(store, "folders", 10)
    recs = {Path(r.uri).name: r for r in iter_records(store, shard, max_bytes=50)}
    assert recs["1.jpg"].label == "alice" and recs["1.jpg"].data == b"jpegbytes"
    assert recs["notes.txt"].status == schema.UNSUPPORTED and recs["notes.txt"].data is None
    assert recs["big.png"].status == schema.TOO_LARGE and recs["big.png"].label == "bob"


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_webdataset_members_grouped_by_key_with_sidecar_labels(tmp_path: Path) -> None:
    _tar(
        tmp_path / "s0.tar",
        [
            ("a/001.jpg", b"img1"),
            ("a/001.json", json.dumps({"label": "alice"}).encode()),
            ("a/002.cls", b"7\n"),
            ("a/002.png", b"img2"),
            ("a/003.jpg", b"img3"),
            ("../evil.jpg", b"escape"),
            ("/abs/evil.jpg", b"escape"),
            ("a/004.jpg", None),
            ("a/005.txt", b"caption"),
        ],
    )
    store = LocalStore(tmp_path)
    (shard,) = list_shards(store)
    assert shard.layout == "webdataset"
    recs = {r.uri.split("#", 1)[1]: r for r in iter_records(store, shard, max_bytes=1000)}
    assert recs["a/001.jpg"].label == "alice" and recs["a/001.jpg"].data == b"img1"
    assert recs["a/002.png"].label == "7"
    assert recs["a/003.jpg"].label is None
    for evil in ("../evil.jpg", "/abs/evil.jpg"):
        assert recs[evil].status == schema.UNSUPPORTED and recs[evil].data is None
        assert "unsafe" in (recs[evil].error or "")
    assert recs["a/004.jpg"].status == schema.UNSUPPORTED and "link" in (
        recs["a/004.jpg"].error or ""
    )
    assert recs["a/005.txt"].status == schema.UNSUPPORTED
    assert not (tmp_path.parent / "evil.jpg").exists() and not Path("/abs/evil.jpg").exists()


def test_truncated_tar_keeps_what_was_read_and_reports_the_damage(tmp_path: Path) -> None:
    _tar(tmp_path / "full.tar", [(f"{i:03d}.jpg", b"x" * 3000) for i in range(5)])
    data = (tmp_path / "full.tar").read_bytes()
    src = tmp_path / "in"
    src.mkdir()
    (src / "cut.tar").write_bytes(data[: 2 * (512 + 3072) + 600])  # inside the 3rd member
    store = LocalStore(src)
    (shard,) = list_shards(store)
    recs = list(iter_records(store, shard, max_bytes=10_000))
    assert [r.status for r in recs] == [None, None, schema.DECODE_ERROR]
    assert recs[-1].status == schema.DECODE_ERROR and "damaged" in (recs[-1].error or "")
    assert recs[-1].uri == shard.uri
