import io
import json
import tarfile
from pathlib import Path

import pytest

from facesieve import schema
from facesieve.errors import ConfigError, StorageError
from facesieve.sources import (
    ShardWork,
    detect_layout,
    iter_records,
    list_input,
    read_ledger,
    update_ledger,
    write_ledger,
)
from facesieve.sources.ledger import Ledger
from facesieve.storage import LocalStore
from facesieve.storage.base import ObjectInfo


def _infos(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(k, 1, "t") for k in keys]


def test_layout_detection() -> None:
    assert detect_layout(_infos("a.tar", "b.tar", "README.md")) == "webdataset"
    assert detect_layout(_infos("alice/1.jpg", "bob/2.png", "bob/notes.txt")) == "folders"
    assert detect_layout(_infos("1.jpg", "trip/2.jpg")) == "flat"
    assert detect_layout(_infos("2024/june/1.jpg")) == "flat"
    with pytest.raises(ConfigError):
        detect_layout([])
    with pytest.raises(ConfigError, match="mixes 1 tar shard"):
        detect_layout(_infos("a.tar", "loose.jpg"))


def _ledger(store: LocalStore, old: Ledger | None, size: int = 3, share: float = 1.0):
    listing = list_input(store, "auto", old.layout if old else None)
    return update_ledger(old, listing, store, size, share)


def _by_key(ledger: Ledger) -> dict[str, tuple[str, int]]:
    return {k: (e.shard_id, e.slot) for k, e in ledger.files.items()}


def test_files_keep_their_shard_and_new_files_go_to_new_shards(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "in")
    for i in range(7):
        src.write_bytes(f"p{i % 3}/{i}.jpg", b"x")
    first, changes = _ledger(src, None)
    assert len(first.shards) == 3 and len(changes.added) == 7 and not changes.removed
    assert sorted(first.files) == sorted(o.key for o in src.list())
    before = _by_key(first)

    src.write_bytes("a_first/9.jpg", b"new")  # sorts before every other folder
    (tmp_path / "in" / "p1" / "4.jpg").unlink()
    src.write_bytes("p2/5.jpg", b"changed")  # another size
    second, changes = _ledger(src, first)
    assert changes.added == ["a_first/9.jpg"] and changes.removed == ["p1/4.jpg"]
    assert changes.changed == ["p2/5.jpg"]
    after = _by_key(second)
    for key in set(before) - {"p1/4.jpg", "p2/5.jpg"}:
        assert after[key] == before[key]  # untouched files keep shard and slot
    assert after["p2/5.jpg"][0] == before["p2/5.jpg"][0]  # same shard...
    used = {slot for shard, slot in before.values() if shard == before["p2/5.jpg"][0]}
    assert after["p2/5.jpg"][1] not in used  # ...a slot never used before in it
    assert after["a_first/9.jpg"][0] not in {s for s, _ in before.values()}  # a new shard
    numbers = {s.number for s in second.shards.values()}
    assert len(numbers) == len(second.shards) == 4
    write_ledger(LocalStore(tmp_path / "out"), second)
    again = read_ledger(LocalStore(tmp_path / "out"))
    assert again is not None and again.files == second.files and again.shards == second.shards


def test_an_emptied_shard_is_dropped_and_mass_removal_is_refused(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "in")
    for i in range(40):
        src.write_bytes(f"p/{i:02d}.jpg", b"x")
    first, _ = _ledger(src, None, size=10)
    for i in range(10):
        (tmp_path / "in" / "p" / f"{i:02d}.jpg").unlink()
    second, changes = _ledger(src, first, size=10)
    assert len(second.shards) == 3 and changes.shards_removed == 1
    for i in range(10, 35):
        (tmp_path / "in" / "p" / f"{i:02d}.jpg").unlink()
    with pytest.raises(ConfigError, match="accept-removals"):
        _ledger(src, second, size=10, share=0.5)
    third, _ = _ledger(src, second, size=10, share=1.0)
    assert len(third.files) == 5


def test_a_changed_tar_gets_a_new_number_and_another_input_is_refused(tmp_path: Path) -> None:
    src = LocalStore(tmp_path / "in")
    _tar(tmp_path / "in" / "a.tar", [("1.jpg", b"x")])
    _tar(tmp_path / "in" / "b.tar", [("1.jpg", b"x")])
    first, _ = _ledger(src, None)
    assert first.layout == "webdataset" and {s.kind for s in first.shards.values()} == {"tar"}
    _tar(tmp_path / "in" / "b.tar", [("1.jpg", b"x"), ("2.jpg", b"yy")])
    second, changes = _ledger(src, first)
    assert changes.changed == ["b.tar"]
    numbers = {s.uri.rsplit("/", 1)[1]: s.number for s in second.shards.values()}
    old = {s.uri.rsplit("/", 1)[1]: s.number for s in first.shards.values()}
    assert numbers["a.tar"] == old["a.tar"] and numbers["b.tar"] > max(old.values())
    with pytest.raises(ConfigError, match=r"not .*use another --out"):
        update_ledger(second, list_input(LocalStore(tmp_path)), LocalStore(tmp_path), 3)
    with pytest.raises(ConfigError, match="--layout flat would need a new output root"):
        list_input(src, "flat", known_layout="webdataset")


def _work(store: LocalStore, ledger: Ledger) -> list[ShardWork]:
    files = ledger.shard_files()
    return [
        ShardWork(s.shard_id, s.number, s.kind, s.uri, ledger.layout, tuple(files[s.shard_id]))
        for s in ledger.shards.values()
    ]


def test_folder_records_carry_labels_slots_and_reject_non_images(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write_bytes("alice/1.jpg", b"jpegbytes")
    store.write_bytes("alice/notes.txt", b"hello")
    store.write_bytes("bob/big.png", b"x" * 100)
    ledger, _ = _ledger(store, None, size=10)
    (work,) = _work(store, ledger)
    recs = {Path(r.uri).name: r for r in iter_records(store, work, max_bytes=50)}
    assert recs["1.jpg"].label == "alice" and recs["1.jpg"].data == b"jpegbytes"
    assert recs["notes.txt"].status == schema.UNSUPPORTED and recs["notes.txt"].data is None
    assert recs["big.png"].status == schema.TOO_LARGE and recs["big.png"].label == "bob"
    assert sorted(r.slot for r in recs.values()) == [0, 1, 2]
    # a file that vanished after the listing becomes its own row, the others are read
    (tmp_path / "alice" / "1.jpg").unlink()
    recs = {Path(r.uri).name: r for r in iter_records(store, work, max_bytes=50)}
    assert recs["1.jpg"].status == schema.DECODE_ERROR and "vanished" in (recs["1.jpg"].error or "")
    # a reusable file is not read at all
    store.write_bytes("alice/1.jpg", b"again")
    seen = []
    recs = {
        Path(r.uri).name: r
        for r in iter_records(store, work, 50, lambda uri, *_: seen.append(uri) or True)
    }
    assert recs["1.jpg"].reuse and recs["1.jpg"].data is None and len(seen) == 1


def test_a_transient_read_error_fails_the_unit_instead_of_marking_the_file(tmp_path: Path) -> None:
    class Flaky(LocalStore):
        def read_bytes(self, key: str) -> bytes:
            raise StorageError("cannot read: connection reset", transient=True)

    store = Flaky(tmp_path)
    store.write_bytes("a/1.jpg", b"x")
    ledger, _ = _ledger(store, None)
    with pytest.raises(StorageError, match="connection reset"):
        list(iter_records(store, _work(store, ledger)[0], max_bytes=50))


def _tar(path: Path, members: list[tuple[str, bytes | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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
    ledger, _ = _ledger(store, None)
    (work,) = _work(store, ledger)
    assert work.kind == "tar"
    recs = {r.uri.split("#", 1)[1]: r for r in iter_records(store, work, max_bytes=1000)}
    assert recs["a/001.jpg"].label == "alice" and recs["a/001.jpg"].data == b"img1"
    assert recs["a/002.png"].label == "7"
    assert recs["a/003.jpg"].label is None
    assert [r.slot for r in recs.values()] == list(range(len(recs)))
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
    ledger, _ = _ledger(store, None)
    (work,) = _work(store, ledger)
    recs = list(iter_records(store, work, max_bytes=10_000))
    assert [r.status for r in recs] == [None, None, schema.DECODE_ERROR]
    assert recs[-1].status == schema.DECODE_ERROR and "damaged" in (recs[-1].error or "")
    assert recs[-1].uri == work.uri
