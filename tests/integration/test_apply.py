"""``facesieve apply`` on real pipeline outputs: the demo's real photos run through every stage
(in-process runner), then applied to folders, WebDataset tars and flat copies, locally and on a
real SeaweedFS S3 server."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from facesieve.apply.decisions import ReviewDecision, decisions_bytes
from facesieve.apply.run import ApplyOptions, apply_dataset
from facesieve.cli.main import main
from facesieve.runner.pipeline import run_pipeline
from facesieve.storage.s3 import S3Store
from tests.integration.helpers import local_config, s3_client

pytestmark = pytest.mark.integration
MANIFEST = "_facesieve.manifest.parquet"
OWN = {"_facesieve.files.parquet", MANIFEST, "_facesieve.summary.json"}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with the SHA-256 of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def data_files(root: Path) -> dict[str, str]:
    return {k: v for k, v in snapshot(root).items() if k not in OWN}


def actions(out: Path) -> dict[str, dict]:
    return {r["uri"]: r for r in pq.read_table(out / "report" / "actions.parquet").to_pylist()}


def manifest(dest: Path) -> dict[str, dict]:
    return {r["uri"]: r for r in pq.read_table(dest / MANIFEST).to_pylist()}


def apply(out: Path | str, dest: Path | str, **kw: object):
    return apply_dataset(ApplyOptions(out=str(out), dest=str(dest), **kw))  # type: ignore[arg-type]


# -- folders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("apply-folders")
    data = root / "data"
    shutil.copytree(demo_data, data)
    out = root / "out"
    assert run_pipeline(str(data), str(out), local_config(), show_progress=False).exit_code == 0
    return data, out, snapshot(data)


def test_folders_become_a_cleaned_tree_of_hard_links(folders, tmp_path: Path) -> None:
    data, out, before = folders
    rows = actions(out)
    result = apply(out, tmp_path / "dest")
    assert result.exit_code == 0
    dest = tmp_path / "dest"
    kept = {u for u, r in rows.items() if r["action"] in ("keep", "review")}
    assert {r["action"] for r in rows.values()} >= {"keep", "drop", "review"}
    assert set(data_files(dest)) == {str(Path(u).relative_to(data)) for u in kept}
    for uri in kept:  # hard links: the same file, no bytes copied
        assert os.stat(uri).st_ino == (dest / Path(uri).relative_to(data)).stat().st_ino
    got = manifest(dest)
    assert set(got) == set(rows)  # one row per input image, the dropped ones too
    for uri, row in rows.items():
        want = "drop" if row["action"] == "drop" else "keep"
        assert got[uri]["action"] == want and got[uri]["report_action"] == row["action"]
        assert (got[uri]["dest_key"] is None) == (want == "drop")
        assert got[uri]["reasons"] == row["reasons"]
    summary = json.loads((dest / "_facesieve.summary.json").read_text())
    assert summary["actions"]["drop"] == sum(r["action"] == "drop" for r in rows.values())
    assert summary["files"]["written"] == len(kept) and summary["review_kept"] >= 1
    assert snapshot(data) == before  # the input is never modified


def test_decisions_change_the_tree_and_a_rerun_converges(folders, tmp_path: Path) -> None:
    data, out, before = folders
    rows = actions(out)
    dropped = next(u for u, r in rows.items() if r["reasons"] == ["near_duplicate"])
    kept = sorted(u for u, r in rows.items() if r["action"] == "keep")
    folders_of = sorted({Path(u).parent for u in kept})
    target = folders_of[0].name  # its kept 0.jpg clashes with the moved file's name
    moved = next(u for u in kept if Path(u).parent == folders_of[1])
    gone = next(u for u in kept if Path(u).parent == folders_of[2])
    assert (data / target / Path(moved).name).exists()
    decided = [
        ReviewDecision(rows[dropped]["image_id"], "keep"),
        ReviewDecision(rows[gone]["image_id"], "drop", note="checked by hand"),
        ReviewDecision(rows[moved]["image_id"], "relabel", target),
        ReviewDecision("0000000000000000", "drop"),
    ]
    decisions = tmp_path / "decisions.json"
    decisions.write_bytes(decisions_bytes(decided))
    dest = tmp_path / "dest"
    first = apply(out, dest, decisions=str(decisions))
    files = data_files(dest)
    assert str(Path(dropped).relative_to(data)) in files  # a drop decided keep appears
    assert str(Path(gone).relative_to(data)) not in files  # a keep decided drop is gone
    assert str(Path(moved).relative_to(data)) not in files
    row = manifest(dest)[moved]
    assert row["action"] == "relabel" and row["label"] == target and row["chosen_by"] == "decision"
    stem = Path(moved).stem
    assert row["dest_key"] == f"{target}/{stem}~{rows[moved]['image_id'][:8]}.jpg"
    assert "name clash" in row["note"] and row["dest_key"] in files
    assert files[row["dest_key"]] == hashlib.sha256(Path(moved).read_bytes()).hexdigest()
    assert manifest(dest)[gone]["note"] == "decision: checked by hand"
    assert first.summary["decisions"] == {
        "given": 4,
        "unknown": 1,
        "unknown_first": ["0000000000000000"],
    }

    # the same apply again: nothing written, the same DEST
    state = snapshot(dest)
    second = apply(out, dest, decisions=str(decisions))
    assert second.summary["files"]["written"] == 0 and second.summary["files"]["removed"] == 0
    assert {k: v for k, v in snapshot(dest).items() if "summary" not in k} == {
        k: v for k, v in state.items() if "summary" not in k
    }
    # decisions withdrawn: DEST becomes what a fresh apply writes, stray files of others stay
    (dest / "notes-of-someone.txt").write_text("not apply's")
    third = apply(out, dest)
    fresh = tmp_path / "fresh"
    apply(out, fresh)
    assert third.summary["files"]["removed"] == 2  # the kept duplicate and the renamed copy
    assert data_files(dest) == {
        **data_files(fresh),
        "notes-of-someone.txt": snapshot(dest)["notes-of-someone.txt"],
    }
    assert (dest / MANIFEST).read_bytes() == (fresh / MANIFEST).read_bytes()
    assert snapshot(data) == before


def test_a_file_apply_did_not_write_is_never_overwritten(
    folders, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, before = folders
    rows = actions(out)
    kept = sorted(u for u, r in rows.items() if r["action"] == "keep")
    moving = kept[0]
    target = next(Path(u).parent.name for u in kept if Path(u).parent != Path(moving).parent)
    dest = tmp_path / "dest"
    assert main(["apply", str(out), "--to", str(dest), "-q"]) == 0
    name = Path(moving).name
    if str(data / target / name) in kept:  # the kept file there keeps the name
        name = f"{Path(moving).stem}~{rows[moving]['image_id'][:8]}{Path(moving).suffix}"
    squatter = dest / target / name  # someone's file exactly where the relabel lands
    squatter.write_bytes(b"someone else's")
    decisions = tmp_path / "d.json"
    decision = ReviewDecision(rows[moving]["image_id"], "relabel", target)
    decisions.write_bytes(decisions_bytes([decision]))
    capsys.readouterr()
    code = main(["apply", str(out), "--to", str(dest), "--decisions", str(decisions), "-q"])
    printed = capsys.readouterr().out
    assert code == 1  # failed files, the rest written
    assert squatter.read_bytes() == b"someone else's"
    row = manifest(dest)[moving]
    assert row["action"] == "failed" and row["dest_key"] is None
    assert "apply did not write: not overwritten" in row["note"]
    assert f"FAILED: 1 file(s), first {moving}" in printed
    assert not (dest / Path(moving).relative_to(data)).exists()  # it left its old place
    others = {str(Path(u).relative_to(data)) for u in kept if u != moving}
    assert others <= set(data_files(dest))
    assert snapshot(data) == before


def test_an_apply_killed_half_way_is_finished_by_the_next(
    folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesieve.apply import files, transfer

    _, out, _ = folders
    calls = []

    def dies_after_three(*args: object, **kw: object) -> int:
        calls.append(args)
        if len(calls) > 3:
            raise KeyboardInterrupt  # the process is stopped while copying
        return transfer.transfer(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(files, "transfer", dies_after_three)
    dest = tmp_path / "dest"
    with pytest.raises(KeyboardInterrupt):
        apply(out, dest, link=False)
    monkeypatch.undo()
    assert 0 < len(data_files(dest)) < 10 and not (dest / MANIFEST).exists()
    result = apply(out, dest)  # its files are recognised as apply's own, not refused
    assert result.exit_code == 0
    fresh = tmp_path / "fresh"
    apply(out, fresh)
    assert data_files(dest) == data_files(fresh)
    assert (dest / MANIFEST).read_bytes() == (fresh / MANIFEST).read_bytes()


def test_dry_run_writes_nothing_and_quarantine_keeps_the_drops(
    folders, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, before = folders
    rows = actions(out)
    dest, q = tmp_path / "dest", tmp_path / "quarantine"
    args = ["apply", str(out), "--to", str(dest), "--quarantine", str(q), "-q"]
    assert main([*args, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not dest.exists() and not q.exists()
    n_kept = sum(r["action"] != "drop" for r in rows.values())
    assert printed.count("\nwrite ") + printed.startswith("write ") == n_kept
    assert "(dry run)" in printed

    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    readable = {u for u, r in rows.items() if r["action"] == "drop" and Path(u).is_file()}
    assert summary["quarantine"]["written"] == summary["actions"]["drop"] == len(readable)
    assert set(data_files(q)) == {str(Path(u).relative_to(data)) for u in readable}
    qrows = manifest(q)
    assert set(qrows) == readable
    assert all(qrows[u]["reasons"] == rows[u]["reasons"] for u in readable)
    assert snapshot(data) == before


def test_refusals_leave_everything_as_it_was(
    folders, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, out, before = folders
    foreign = tmp_path / "someone"
    foreign.mkdir()
    (foreign / "keep-me.jpg").write_bytes(b"mine")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "facesieve-decisions", "version": 1, "decisions": [{}]}')
    cases = [
        (["--to", str(data / "cleaned")], "inside the input"),
        (["--to", str(out / "cleaned")], "inside OUT"),
        (["--to", str(foreign)], "apply writes only into an empty folder"),
        (["--to", str(tmp_path / "d"), "--decisions", str(bad)], "image_id"),
        (["--to", str(tmp_path / "d"), "--decisions", str(tmp_path / "none.json")], "cannot read"),
        (["--to", str(tmp_path / "d"), "--quarantine", str(tmp_path / "d" / "q")], "inside DEST"),
    ]
    for extra, message in cases:
        caplog.clear()
        assert main(["apply", str(out), *extra, "-q"]) == 2, extra
        assert message in caplog.text, (extra, caplog.text)
    caplog.clear()
    assert main(["apply", str(tmp_path), "--to", str(tmp_path / "d"), "-q"]) == 2
    assert "does not exist: run `facesieve run" in caplog.text
    assert snapshot(foreign) == {"keep-me.jpg": hashlib.sha256(b"mine").hexdigest()}
    assert not (tmp_path / "d").exists()
    assert snapshot(data) == before


def test_apply_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["apply", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--to", "--decisions", "--quarantine", "--dry-run", "--copy", "--json"):
        assert flag in text
    assert "Exit codes" in text and "review" in text


def test_a_folder_tree_into_an_s3_bucket_converges(
    folders, s3, creds, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out, before = folders
    rows = actions(out)
    client = s3_client(s3.endpoint)
    client.create_bucket(Bucket="apply-tree")
    dropped = next(u for u, r in sorted(rows.items()) if r["reasons"] == ["near_duplicate"])
    decisions = tmp_path / "d.json"
    decisions.write_bytes(decisions_bytes([ReviewDecision(rows[dropped]["image_id"], "keep")]))
    args = ["apply", str(out), "--to", "s3://apply-tree/v1", "--s3-endpoint", s3.endpoint]
    assert main([*args, "--decisions", str(decisions), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["by_decision"] == 1

    def listed() -> dict[str, bytes]:
        found = client.list_objects_v2(Bucket="apply-tree", Prefix="v1/")["Contents"]
        return {
            o["Key"][3:]: client.get_object(Bucket="apply-tree", Key=o["Key"])["Body"].read()
            for o in found
            if not o["Key"][3:].startswith("_facesieve.")
        }

    wanted = {str(Path(u).relative_to(data)) for u, r in rows.items() if r["action"] != "drop"}
    extra = str(Path(dropped).relative_to(data))
    got = listed()
    assert set(got) == wanted | {extra}
    assert got[extra] == Path(dropped).read_bytes()
    assert main([*args, "--json", "-q"]) == 0  # the decision withdrawn: its copy is removed
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == {"written": 0, "unchanged": len(wanted), "removed": 1}
    assert set(listed()) == wanted
    assert snapshot(data) == before


# -- flat ------------------------------------------------------------------------------------


def test_flat_copy_and_files_changed_since_the_report(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "photos"
    for folder in sorted(p for p in demo_data.iterdir() if p.is_dir())[:4]:
        shutil.copytree(folder, data / "2026" / folder.name)  # two levels deep: flat
    out = tmp_path / "out"
    assert run_pipeline(str(data), str(out), local_config(), show_progress=False).exit_code == 0
    rows = actions(out)
    assert {r["label"] for r in rows.values()} == {None}
    dest = tmp_path / "dest"
    assert apply(out, dest, link=False).exit_code == 0  # copies: the input can change apart
    kept = {str(Path(u).relative_to(data)) for u, r in rows.items() if r["action"] != "drop"}
    assert set(data_files(dest)) == kept and kept
    assert manifest(dest).keys() == rows.keys()

    # two kept files are rewritten after the report: neither is applied blindly
    victims = sorted(u for u, r in rows.items() if r["action"] == "keep")[:2]
    old = {u: Path(u).read_bytes() for u in victims}
    for uri in victims:
        Path(uri).write_bytes(old[uri] + b"\0")
    (dest / Path(victims[1]).relative_to(data)).unlink()  # no earlier copy to fall back on
    assert main(["apply", str(out), "--to", str(dest), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "STALE: 2 file(s) changed or vanished since the report" in printed
    got = manifest(dest)
    for uri in victims:
        assert got[uri]["action"] == "stale" and "changed since the report" in got[uri]["note"]
    assert "earlier apply wrote is kept" in got[victims[0]]["note"]  # the old copy stays
    assert (dest / Path(victims[0]).relative_to(data)).read_bytes() == old[victims[0]]
    assert not (dest / Path(victims[1]).relative_to(data)).exists()
    assert json.loads((dest / "_facesieve.summary.json").read_text())["actions"]["stale"] == 2


# -- WebDataset ------------------------------------------------------------------------------


def make_shards(data: Path, dest: Path, damaged: bool = False, n: int = 60) -> list[Path]:
    """Two tars of the demo photos: KEY.jpg + KEY.json (a label and another field) + KEY.txt in
    the first, KEY.jpg + KEY.cls in the second; with ``damaged``, a third one cut short."""
    every = sorted(data.rglob("*.jpg"))
    images = every[:n]
    dest.mkdir(parents=True)
    paths = []
    for t, part in enumerate((images[0::2], images[1::2])):
        path = dest / f"shard-{t:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for i, img in enumerate(part):
                key = f"s{t}/{i:05d}"
                label = img.parent.name
                side = (
                    [
                        (".json", json.dumps({"label": label, "source": img.name}).encode()),
                        (".txt", f"caption {i}".encode()),
                    ]
                    if t == 0
                    else [(".cls", f"{label}\n".encode())]
                )
                for ext, payload in [(".jpg", img.read_bytes()), *side]:
                    info = tarfile.TarInfo(key + ext)
                    info.size, info.mtime = len(payload), 1_700_000_000
                    tar.addfile(info, io.BytesIO(payload))
        paths.append(path)
    if damaged:  # a tar cut off in the middle of a member: the samples before it are read
        whole = dest / "whole.tar"
        with tarfile.open(whole, "w") as tar:
            for i, img in enumerate(every[n : n + 4]):
                for ext, payload in (
                    (".jpg", img.read_bytes()),
                    (".cls", img.parent.name.encode()),
                ):
                    info = tarfile.TarInfo(f"d/{i:05d}{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        blob = whole.read_bytes()
        whole.unlink()
        (dest / "shard-002.tar").write_bytes(blob[: len(blob) * 2 // 3])
        paths.append(dest / "shard-002.tar")
    return paths


def read_tar(path: Path) -> dict[str, bytes]:
    """The members of a tar, as far as it can be read (the damaged input tar stops early)."""
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r|") as tar:
        try:
            for m in tar:
                f = tar.extractfile(m)
                if f is not None:
                    members[m.name] = f.read()
        except tarfile.ReadError:
            members.popitem()  # the member cut short
    return members


def test_webdataset_shards_are_rewritten_sample_by_sample(demo_data: Path, tmp_path: Path) -> None:
    inp = tmp_path / "in"
    make_shards(demo_data, inp, damaged=True)
    out = tmp_path / "out"
    assert run_pipeline(str(inp), str(out), local_config(), show_progress=False).exit_code == 0
    before = snapshot(inp)
    rows = actions(out)
    jpg_rows = {u: r for u, r in rows.items() if u.endswith(".jpg")}
    kept0 = sorted(u for u, r in jpg_rows.items() if r["action"] == "keep" and "shard-000" in u)
    kept1 = sorted(u for u, r in jpg_rows.items() if r["action"] == "keep" and "shard-001" in u)
    decided = [
        ReviewDecision(rows[kept0[0]]["image_id"], "relabel", "Someone_Else"),
        ReviewDecision(rows[kept1[0]]["image_id"], "relabel", "Another_One"),
    ]
    (tmp_path / "d.json").write_bytes(decisions_bytes(decided))
    dest, q = tmp_path / "dest", tmp_path / "q"
    result = apply(out, dest, decisions=str(tmp_path / "d.json"), quarantine=str(q))
    assert result.exit_code == 0
    assert sorted(data_files(dest)) == ["shard-000.tar", "shard-001.tar", "shard-002.tar"]
    assert manifest(dest)[str(inp / "shard-002.tar")]["action"] == "drop"  # the damage itself
    for t in (0, 1, 2):
        source = read_tar(inp / f"shard-{t:03d}.tar")
        got, dropped = read_tar(dest / f"shard-{t:03d}.tar"), read_tar(q / f"shard-{t:03d}.tar")
        for uri, row in jpg_rows.items():
            tar_uri, _, name = uri.partition("#")
            if not tar_uri.endswith(f"shard-{t:03d}.tar"):
                continue
            key = name[: -len(".jpg")]
            members = {n for n in source if n.startswith(key + ".")}
            if row["action"] == "drop":
                assert not any(n in got for n in members) and members <= set(dropped)
            else:
                assert members <= set(got) and got[name] == source[name]
        if t < 2:
            assert set(got) | set(dropped) == set(source)
    name0 = kept0[0].partition("#")[2][: -len(".jpg")]
    side = json.loads(read_tar(dest / "shard-000.tar")[name0 + ".json"])
    assert side["label"] == "Someone_Else" and side["source"].endswith(".jpg")  # fields kept
    name1 = kept1[0].partition("#")[2][: -len(".jpg")]
    assert read_tar(dest / "shard-001.tar")[name1 + ".cls"] == b"Another_One\n"
    txt = manifest(dest)[kept0[0].replace(".jpg", ".txt")]
    assert txt["action"] == "relabel" and txt["report_action"] == "drop"  # follows its photo
    assert manifest(dest)[kept0[0]]["dest_key"] == f"shard-000.tar#{name0}.jpg"

    again = apply(out, dest, decisions=str(tmp_path / "d.json"), quarantine=str(q))
    assert again.summary["files"] == {"written": 0, "unchanged": 3, "removed": 0}
    assert snapshot(inp) == before

    # one photo inside a tar changes after the report: that sample alone is left out
    changed = kept1[1]
    member = changed.partition("#")[2]
    source = read_tar(inp / "shard-001.tar")
    with tarfile.open(inp / "shard-001.tar", "w") as tar:
        for name, payload in source.items():
            payload = payload + b"\0" if name == member else payload
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    third = apply(out, dest)
    row = manifest(dest)[changed]
    assert row["action"] == "stale" and row["dest_key"] is None
    assert third.summary["actions"]["stale"] == 1
    got = read_tar(dest / "shard-001.tar")
    assert member not in got and kept1[2].partition("#")[2] in got


# -- S3 --------------------------------------------------------------------------------------


def test_s3_input_out_and_dest(
    s3, creds, demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = s3_client(s3.endpoint)
    client.create_bucket(Bucket="apply-in")
    client.create_bucket(Bucket="apply-out")
    for path in make_shards(demo_data, tmp_path / "tars", n=24):
        client.upload_file(str(path), "apply-in", f"wds/{path.name}")
    cfg = local_config().with_overrides("run", s3_endpoint=s3.endpoint)
    run = run_pipeline("s3://apply-in/wds", "s3://apply-out/run", cfg, show_progress=False)
    assert run.exit_code == 0
    rows = pq.read_table(
        io.BytesIO(
            client.get_object(Bucket="apply-out", Key="run/report/actions.parquet")["Body"].read()
        )
    ).to_pylist()
    drop = next(r for r in rows if r["action"] == "drop" and r["uri"].endswith(".jpg"))
    client.put_object(
        Bucket="apply-out",
        Key="decisions.json",
        Body=decisions_bytes([ReviewDecision(drop["image_id"], "keep")]),
    )
    args = [
        "apply",
        "s3://apply-out/run",
        "--to",
        "s3://apply-out/clean",
        "--json",
        "-q",
        "--s3-endpoint",
        s3.endpoint,
        "--decisions",
        "s3://apply-out/decisions.json",
    ]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["by_decision"] == 1 and first["files"]["written"] == 2
    listed = client.list_objects_v2(Bucket="apply-out", Prefix="clean/")["Contents"]
    keys = {o["Key"] for o in listed}
    assert {"clean/shard-000.tar", "clean/shard-001.tar", f"clean/{MANIFEST}"} <= keys
    names: dict[str, set[str]] = {}
    for shard in ("shard-000.tar", "shard-001.tar"):
        body = client.get_object(Bucket="apply-out", Key=f"clean/{shard}")["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            names[shard] = {m.name for m in tar}
    for r in rows:
        if not r["uri"].endswith(".jpg"):
            continue
        tar_uri, _, member = r["uri"].partition("#")
        shard = tar_uri.rsplit("/", 1)[1]
        written = r["action"] != "drop" or r["image_id"] == drop["image_id"]
        assert (member in names[shard]) == written, r["uri"]
    assert main(args) == 0  # idempotent on S3 too
    assert json.loads(capsys.readouterr().out)["files"]["written"] == 0

    # a streamed upload past one part is a multipart upload, whole or not at all
    store = S3Store("apply-out", "big", endpoint=s3.endpoint)
    blob = os.urandom(11 << 20)
    with store.open_write("x.bin", part_bytes=5 << 20) as f:
        for start in range(0, len(blob), 1 << 20):
            f.write(blob[start : start + (1 << 20)])
    assert store.read_bytes("x.bin") == blob
    with pytest.raises(RuntimeError), store.open_write("y.bin", part_bytes=5 << 20) as f:
        f.write(blob)
        raise RuntimeError("stopped half way")
    assert not store.exists("y.bin")
    uploads = client.list_multipart_uploads(Bucket="apply-out").get("Uploads", [])
    assert not [u for u in uploads if u["Key"].endswith("y.bin")]
