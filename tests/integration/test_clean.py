"""The whole pipeline (embed, index, cluster, clean) on real faces with known problems."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from facesieve.clean import duplicates, pixel_cache
from facesieve.config import Config
from facesieve.runner.pipeline import RunResult, run_command, run_pipeline
from tests.integration.browser import Watched, browser  # noqa: F401
from tests.integration.helpers import local_config

ODD_LABEL = '<i>x&"y'  # a folder name that must come out escaped


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """The demo data (which already carries a misfiled photo, an exact copy, broken files) plus
    a resized near-duplicate and a label whose name is HTML."""
    root = tmp_path_factory.mktemp("labeled") / "data"
    shutil.copytree(demo_data, root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    img = Image.open(folders[4] / "0.jpg")
    buf = io.BytesIO()
    img.resize((img.width * 2 // 3, img.height * 2 // 3)).save(buf, "JPEG", quality=70)
    (folders[4] / "small.jpg").write_bytes(buf.getvalue())
    (folders[5]).rename(root / ODD_LABEL)
    # a second truncated copy: the same bytes, but a broken file is no copy of a photo
    shutil.copy(folders[0] / "truncated.jpg", folders[0] / "truncated-copy.jpg")
    # two people under one label: folders[6]'s person joins folders[7]
    for f in sorted(folders[6].iterdir()):
        f.rename(folders[7] / f"m{f.name}")
    folders[6].rmdir()
    # one person under two labels: three of folders[8]'s images get a label of their own
    (root / "zz_same_person").mkdir()
    for name in ("2.jpg", "3.jpg", "4.jpg"):
        (folders[8] / name).rename(root / "zz_same_person" / name)
    return root


@pytest.fixture(scope="module")
def run(labeled: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    out = tmp_path_factory.mktemp("cleanout")
    return out, run_pipeline(str(labeled), str(out), local_config(), show_progress=False)


def _folders(rows: dict[str, dict]) -> list[str]:
    """The demo's identity folders in build order (the renamed one sorts first, so left out)."""
    return sorted({k.split("/")[0] for k in rows if not k.startswith("<")})


def _rows(out: Path) -> dict[str, dict]:
    rows = pq.read_table(out / "report" / "actions.parquet").to_pylist()
    return {"/".join(r["uri"].split("/")[-2:]): r for r in rows}


def test_every_image_has_one_action_row(run: tuple[Path, RunResult], labeled: Path) -> None:
    out, _ = run
    rows = _rows(out)
    files = {"/".join(p.parts[-2:]) for p in labeled.rglob("*") if p.is_file()}
    assert set(rows) == files
    assert {r["action"] for r in rows.values()} <= {"keep", "drop", "relabel", "review"}


def test_broken_files_and_missing_faces(run: tuple[Path, RunResult]) -> None:
    rows = _rows(run[0])
    first = _folders(rows)[0]
    for name in ("truncated.jpg", "truncated-copy.jpg", "notes.txt"):
        assert rows[f"{first}/{name}"]["reasons"] == ["decode_error"]  # no exact_duplicate
        assert rows[f"{first}/{name}"]["action"] == "drop"
    assert rows[f"{first}/sky.jpg"]["reasons"] == ["no_face"]
    summary = run[1].info["report"]
    assert summary["status"]["decode_error"] == 2 and summary["status"]["unsupported"] == 1
    assert sum(summary["status"].values()) == summary["images"] == len(rows)


def test_duplicates_point_at_the_kept_copy(run: tuple[Path, RunResult]) -> None:
    rows = _rows(run[0])
    by_id = {r["image_id"]: k for k, r in rows.items()}
    folders = _folders(rows)
    exact = [k for k, r in rows.items() if "exact_duplicate" in r["reasons"]]
    assert len(exact) == 1
    pair = {exact[0], by_id[rows[exact[0]]["duplicate_of"]]}
    assert pair == {f"{folders[3]}/0.jpg", f"{folders[3]}/0-copy.jpg"}
    # the resized copy is dropped in favour of the larger original
    small = rows[f"{folders[4]}/small.jpg"]
    assert "near_duplicate" in small["reasons"] and small["action"] == "drop"
    assert by_id[small["duplicate_of"]].startswith(folders[4] + "/")
    assert small["score"] >= Config().clean.near_dup_min_pixel
    # every near duplicate points at an image of the same person that is itself kept
    for _k, r in rows.items():
        if "near_duplicate" in r["reasons"]:
            kept = rows[by_id[r["duplicate_of"]]]
            assert "near_duplicate" not in kept["reasons"]


def test_misfiled_photo_is_mislabeled_with_its_label_suggested(
    run: tuple[Path, RunResult],
) -> None:
    rows = _rows(run[0])
    folders = _folders(rows)
    misfiled = rows[f"{folders[2]}/5.jpg"]
    assert "mislabeled" in misfiled["reasons"]
    # it is also a near copy of Yao Ming's other images, so it is dropped rather than relabeled
    assert misfiled["action"] in ("relabel", "drop")
    yao = next(f for f in folders if f.startswith("yaoming"))
    if misfiled["action"] == "relabel":
        assert misfiled["suggested_label"] == yao
    flagged = [k for k, r in rows.items() if "mislabeled" in r["reasons"]]
    assert flagged == [f"{folders[2]}/5.jpg"]


def test_a_photo_filed_under_two_labels_is_reported_with_both_halves(
    run: tuple[Path, RunResult],
) -> None:
    """The misfiled photo is an edited copy of Yao Ming's: both copies are flagged, and the kept
    one (under the right label) is sent to review."""
    rows = _rows(run[0])
    by_id = {r["image_id"]: k for k, r in rows.items()}
    misfiled = rows[f"{_folders(rows)[2]}/5.jpg"]
    assert {"near_duplicate", "duplicate_across_labels"} <= set(misfiled["reasons"])
    kept = rows[by_id[misfiled["duplicate_of"]]]
    assert kept["label"].startswith("yaoming") and misfiled["suggested_label"] == kept["label"]
    assert "duplicate_across_labels" in kept["reasons"] and kept["action"] == "review"
    # copies under one label only are no labelling problem
    for r in rows.values():
        if "duplicate_across_labels" in r["reasons"]:
            keep = r["duplicate_of"] or r["image_id"]
            group = [x for x in rows.values() if keep in (x["duplicate_of"], x["image_id"])]
            assert len({x["label"] for x in group}) > 1


def test_label_level_problems(run: tuple[Path, RunResult], labeled: Path) -> None:
    rows = _rows(run[0])
    folders = sorted(p.name for p in labeled.iterdir() if p.is_dir() and not p.name.startswith("<"))
    merged = next(f for f in folders if any(k.startswith(f"{f}/m") for k in rows))
    multi = {k for k, r in rows.items() if "label_has_multiple_identities" in r["reasons"]}
    assert multi and all(k.startswith(merged + "/") for k in multi)
    # the flagged faces are one of the two people: all "m" files or all original ones
    assert len({k.split("/")[1].startswith("m") for k in multi}) == 1
    split = {k: r for k, r in rows.items() if "identity_split_across_labels" in r["reasons"]}
    pair = {k.split("/")[0] for k in split} | {r["suggested_label"] for r in split.values()}
    assert "zz_same_person" in pair


def test_clusters_follow_identities(run: tuple[Path, RunResult]) -> None:
    out, result = run
    ident = pq.read_table(out / "clusters" / "identities.parquet").to_pylist()
    assert result.info["cluster"]["mode"] == "labeled"
    assert len(ident) >= 15
    assert np.median([r["purity"] for r in ident]) == 1.0
    faces = pq.read_table(out / "clusters" / "faces.parquet")
    assert faces.num_rows == result.steps["knn"].totals["faces"]


def test_second_run_does_no_expensive_work(run: tuple[Path, RunResult], labeled: Path) -> None:
    out, first = run
    again = run_pipeline(str(labeled), str(out), local_config(), show_progress=False)
    assert set(again.steps) == set(first.steps)
    assert all(r.processed == 0 and r.skipped == r.units for r in again.steps.values())
    assert again.info["report"]["reasons"] == first.info["report"]["reasons"]


def test_report_escapes_data_strings(run: tuple[Path, RunResult]) -> None:
    report = run[0] / "report"
    page = (report / "index.html").read_text()
    assert ODD_LABEL not in page
    assert "&lt;i&gt;x&amp;&quot;y" in page  # in the changes table: every file is new
    data = (report / "data" / "index.js").read_text("ascii")
    assert ODD_LABEL not in data and '\\u003ci\\u003ex\\u0026\\"y' in data
    assert list((report / "thumbs").glob("sheet-*.jpg"))
    report_id = json.loads((report / "summary.json").read_text())["report_id"]
    assert f'"report":"{report_id}"' in data and len(report_id) == 16
    for name in ("index.html", "review.js", "review.css", "data/index.js", "data/chunk-1.js"):
        text = (report / name).read_text()
        assert "http://" not in text and "https://" not in text  # self-contained


def test_report_renders_in_headless_chromium(
    run: tuple[Path, RunResult],
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Every page of the real report draws, every sheet loads, no script error."""
    actions = pq.read_table(run[0] / "report" / "actions.parquet").to_pylist()
    flagged = [r for r in actions if r["action"] != "keep" or r["reasons"]]
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    w = Watched(context.new_page())
    w.page.goto((run[0] / "report" / "index.html").resolve().as_uri())
    n = w.rendered()
    assert int(w.page.evaluate("+document.body.dataset.shown")) == len(flagged)
    pages = -(-len(flagged) // Config().clean.report_rows)
    for p in range(pages):
        w.page.locator("#cards").scroll_into_view_if_needed()
        w.page.wait_for_function(f"window.facesieve.sheetsRequested.length >= {p + 1}")
        if p + 1 < pages:
            w.page.click("#next")
            n = w.rendered(n)
    w.page.click("#reasons button[data-reason=near_duplicate]")
    n = w.rendered(n)
    w.page.wait_for_timeout(500)
    assert w.page.evaluate("document.body.dataset.brokenImages") is None
    assert w.names("sheet-") == {f"sheet-{p + 1}.jpg" for p in range(pages)}
    shot = tmp_path / "report.png"
    w.page.locator("#cards").scroll_into_view_if_needed()
    w.page.wait_for_timeout(300)
    w.page.screenshot(path=str(shot))
    assert w.errors == []
    context.close()
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.shape[:2] == (1600, 1200)
    # a real page: a light background with text, and photo thumbnails (thousands of distinct
    # colours; text and flat boxes alone give a few hundred)
    assert pixels.mean() > 150 and pixels.std() > 30
    colours = np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0)
    assert len(colours) > 3000


def test_unlabeled_photo_folder(demo_data: Path, tmp_path: Path) -> None:
    """The same photos read as a flat collection: clusters are the identities, no label rules."""
    cfg = local_config().with_overrides("source", layout="flat")
    result = run_pipeline(str(demo_data), str(tmp_path / "out"), cfg, show_progress=False)
    assert result.info["cluster"]["mode"] == "unlabeled"
    ident = pq.read_table(tmp_path / "out" / "clusters" / "identities.parquet").to_pylist()
    assert len(ident) >= 15 and all(r["majority_label"] is None for r in ident)
    reasons = result.info["report"]["reasons"]
    assert reasons.get("near_duplicate", 0) >= 15  # the demo's augmented copies
    assert reasons.get("exact_duplicate") == 1 and reasons.get("no_face", 0) >= 1
    label_reasons = {
        "mislabeled",
        "outlier",
        "label_has_multiple_identities",
        "identity_split_across_labels",
        "multiple_faces",
    }
    assert not label_reasons & set(reasons)
    # a near duplicate points at the copy that is kept, which is no duplicate itself (it may
    # still be dropped for another reason: all copies of a low-quality face are low quality)
    rows = pq.read_table(tmp_path / "out" / "report" / "actions.parquet").to_pylist()
    by_id = {r["image_id"]: r for r in rows}
    near = [r for r in rows if "near_duplicate" in r["reasons"]]
    dup = {"near_duplicate", "exact_duplicate"}
    assert near and not any(dup & set(by_id[r["duplicate_of"]]["reasons"]) for r in near)
    kept = [by_id[r["duplicate_of"]] for r in near]
    assert sum(k["action"] != "drop" for k in kept) >= len(kept) // 2


def test_folder_without_faces_still_gets_a_report(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run_pipeline(
        str(tmp_path / "in"), str(tmp_path / "out"), local_config(), show_progress=False
    )
    assert "cluster" not in result.steps and not (tmp_path / "out" / "index").exists()
    rows = pq.read_table(tmp_path / "out" / "report" / "actions.parquet").to_pylist()
    assert sorted(r["reasons"][0] for r in rows) == ["decode_error", "decode_error"]
    assert (tmp_path / "out" / "report" / "index.html").is_file()


def test_pixel_scores_are_reused_by_the_next_report(
    run: tuple[Path, RunResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report redone over the same images (here: another thumbnail count) reads no image
    back for near-duplicate pairs it scored before, and decides the same."""
    out = tmp_path / "out"
    shutil.copytree(run[0], out)
    fetched: list[str] = []
    real_fetch = duplicates.fetch_bytes

    def spy(uris, *a, **kw):  # type: ignore[no-untyped-def]
        uris = list(uris)
        fetched.extend(uris)
        return real_fetch(uris, *a, **kw)

    monkeypatch.setattr(duplicates, "fetch_bytes", spy)
    cfg = local_config().with_overrides("clean", report_rows=7)
    again = run_command("clean", str(out), cfg, stages=("clean",), show_progress=False)
    dups = again.info["report"]["duplicates"]
    assert dups["pairs_compared"] >= 1 and dups["near"] >= 1
    assert dups["pairs_scored_earlier"] == dups["pairs_compared"]
    assert fetched == []
    before = pq.read_table(run[0] / "report" / "actions.parquet")
    assert pq.read_table(out / "report" / "actions.parquet").equals(before)
    # a score version the cache was not written with: every pair is read and scored again
    monkeypatch.setattr(pixel_cache, "SCORE_VERSION", pixel_cache.SCORE_VERSION + 1)
    cfg = local_config().with_overrides("clean", report_rows=8)
    third = run_command("clean", str(out), cfg, stages=("clean",), show_progress=False)
    assert third.info["report"]["duplicates"]["pairs_scored_earlier"] == 0
    assert fetched and pq.read_table(out / "report" / "actions.parquet").equals(before)
