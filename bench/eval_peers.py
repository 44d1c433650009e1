"""Peer baselines beside facesieve on the noisy copies that `facesieve eval` writes, same truth.

For each kind (``labeled``, ``photos``) of an eval work folder and one part (``test``,
``calibration`` or ``all``) it reads ``WORK/<kind>/<part>/{truth.json,data,out}`` and reports
precision, recall and wall seconds, overall and per data kind (the truth's ``source``), for:

- near duplicates:
  - ``cosine``: plain cosine between two images' subject faces, on facesieve's own embeddings
    (``out/faces``); an image's subject face is the face in the cluster of its action row's
    ``cluster_id``, else its first face; pairs are image pairs at cosine >= t (``--cosine``,
    default 0.85, 0.90 and 0.95). Its seconds are the pair search only: the embeddings are
    facesieve's.
  - ``imagededup_phash``: imagededup's PHash at its default Hamming distance <= 10;
    ``imagededup_cnn`` when torchvision and MobileNetV3's weights can be had (else skipped, with
    the reason).
  - ``fastdup``: fastdup's own run (its defaults, 2 threads) at its similarity thresholds 0.90 and
    0.96 (one run: pairs of its k-NN output at >= 0.90, then at >= 0.96).
- mislabeled (``labeled`` only): cleanlab's ``find_label_issues`` on out-of-fold probabilities of
  a kNN classifier (k=10, cosine, distance weights, 3 folds) on the subject-face embeddings of
  every image with a face and a label; labels with fewer than 3 such images are not scored.
- ``facesieve``: its own scores on the same folder (``facesieve.evaluate.score``) and its run's
  seconds (``out/run.json``: embedding included).

Scoring is facesieve's (``lib/facesieve/evaluate/score.py``). Near duplicates: a pair is right
when both files descend from one source image (truth ``of``); wrong when it is not and touches an
injected copy; the rest are ``source_pairs`` (two untouched source images: the truth cannot judge
them, so ``precision_without_source_pairs`` leaves them out). Pairs of byte-identical files
(same sha256 in ``out/images``) are facesieve's ``exact_duplicate`` reason, so they are left out of
a peer's near-duplicate precision; recall is the share of near copies (``near_copy`` and
non-exact ``refiled``) that sit in any flagged pair, identical or not (as facesieve counts it);
``exact_recall`` is the same for exact copies. Per data kind, only pairs with both files of that
kind count. Mislabeled: positives are the truth kinds ``moved`` and ``swapped``.

Each peer runs in its own virtual environment, as a child process of this script (``--worker``):

    python -m venv /tmp/idvenv && /tmp/idvenv/bin/pip install torch==2.13.0 \
        && /tmp/idvenv/bin/pip install --no-deps imagededup==0.3.3.post2 \
        && /tmp/idvenv/bin/pip install Pillow tqdm scikit-learn PyWavelets matplotlib scipy numpy
    python -m venv /tmp/fdvenv && /tmp/fdvenv/bin/pip install fastdup==2.54
    python -m venv /tmp/clvenv && /tmp/clvenv/bin/pip install cleanlab==2.9.0 scikit-learn
    python bench/eval_peers.py /tmp/evA --part test --table     # from /work/main/.venv

imagededup imports torchvision even for hashing; when torchvision is absent (its PyPI wheels for
torch 2.13 are CUDA builds) the PHash worker stands in a dummy torchvision module, which the
hashing code never calls. Telemetry is off in every child (``SENTRY_OPT_OUT=1``). Prints one JSON
object on stdout (a short table on stderr with ``--table``); the children's chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.eval_peers")
KINDS = ("labeled", "photos")
PYTHONS = {  # peer -> (option, default interpreter)
    "imagededup": ("--imagededup-python", "/tmp/idvenv/bin/python"),
    "fastdup": ("--fastdup-python", "/tmp/fdvenv/bin/python"),
    "cleanlab": ("--cleanlab-python", "/tmp/clvenv/bin/python"),
}
FASTDUP_THRESHOLDS = (0.90, 0.96)
PHASH_DISTANCE = 10  # imagededup's default max_distance_threshold
CNN_THRESHOLD = 0.9  # imagededup's default min_similarity_threshold
# mislabeled positives: the brief's moved + swapped, and score.py's (since 2026-12-02) that also
# counts refiled copies (a copy filed under another identity's label)
MISLABELED_POSITIVES = {
    "moved_swapped": ("moved", "swapped"),
    "with_refiled": ("moved", "swapped", "refiled"),
}


# --- workers: each runs in its peer's own environment, stdlib + that peer only ---------------


def _stub_torchvision() -> bool:
    """imagededup imports torchvision at import time, even for hashing: stand in a dummy."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        from unittest import mock

        for name in (
            "torchvision",
            "torchvision.models",
            "torchvision.models.vision_transformer",
            "torchvision.transforms",
        ):
            sys.modules[name] = mock.MagicMock()
        return True
    return False


def _imagededup_pairs(dups: dict[str, list]) -> list[list]:
    best: dict[tuple[str, str], float] = {}
    for a, found in dups.items():
        for b, s in found:
            key = (min(a, b), max(a, b))
            best[key] = float(s)
    return [[a, b, s] for (a, b), s in sorted(best.items())]


def worker_phash(data: str, threads: int) -> dict[str, Any]:
    stubbed = _stub_torchvision()
    from importlib.metadata import version

    from imagededup.methods import PHash

    t0 = time.perf_counter()
    ph = PHash(verbose=False)
    enc = ph.encode_images(image_dir=data, recursive=True, num_enc_workers=threads)
    dups = ph.find_duplicates(
        encoding_map=enc,
        max_distance_threshold=PHASH_DISTANCE,
        scores=True,
        num_dist_workers=threads,
    )
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "version": version("imagededup"),
        "torchvision_stubbed": stubbed,
        "encoded": len(enc),
        "pairs": _imagededup_pairs(dups),
    }


def worker_cnn(data: str, threads: int) -> dict[str, Any]:
    try:
        import torchvision  # noqa: F401
    except ImportError as e:
        return {
            "skipped": f"torchvision is not installed ({e}); imagededup's CNN needs it and"
            " the PyPI torchvision wheels for torch 2.13 are CUDA (+cu130) builds"
        }
    from importlib.metadata import version

    from imagededup.methods import CNN

    t0 = time.perf_counter()
    try:
        cnn = CNN(verbose=False)  # loads MobileNetV3 weights (torch hub download if not cached)
    except Exception as e:
        return {"skipped": f"MobileNetV3 weights could not be loaded offline: {e!r}"[:400]}
    enc = cnn.encode_images(image_dir=data, recursive=True, num_enc_workers=threads)
    dups = cnn.find_duplicates(
        encoding_map=enc, min_similarity_threshold=CNN_THRESHOLD, scores=True
    )
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "version": version("imagededup"),
        "threshold": CNN_THRESHOLD,
        "pairs": _imagededup_pairs(dups),
    }


def worker_fastdup(data: str, threads: int) -> dict[str, Any]:
    os.environ["SENTRY_OPT_OUT"] = "1"
    import shutil

    import fastdup

    root = Path(data).resolve()
    work_dir = tempfile.mkdtemp(prefix="fastdup_")
    try:
        t0 = time.perf_counter()
        fd = fastdup.create(work_dir=work_dir, input_dir=str(root))
        fd.run(overwrite=True, threshold=min(FASTDUP_THRESHOLDS), num_threads=threads)
        seconds = time.perf_counter() - t0
        sim = fd.similarity()
        best: dict[tuple[str, str], float] = {}
        for a, b, d in zip(sim["filename_from"], sim["filename_to"], sim["distance"], strict=True):
            ra = str(Path(a).resolve().relative_to(root))  # fastdup gives paths relative to cwd
            rb = str(Path(b).resolve().relative_to(root))
            key = (min(ra, rb), max(ra, rb))
            best[key] = max(best.get(key, 0.0), float(d))
        return {
            "seconds": round(seconds, 1),
            "version": fastdup.__version__,
            "pairs": [[a, b, s] for (a, b), s in sorted(best.items())],
        }
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def worker_cleanlab(npz: str, threads: int) -> dict[str, Any]:
    from importlib.metadata import version

    import numpy as np
    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    d = np.load(npz)
    x, y = d["x"].astype(np.float64), d["y"]
    t0 = time.perf_counter()
    keep = np.bincount(y)[y] >= 3  # cross-validation needs a few examples per class
    yk = np.unique(y[keep], return_inverse=True)[1]
    probs = cross_val_predict(
        KNeighborsClassifier(10, metric="cosine", weights="distance", n_jobs=threads),
        x[keep],
        yk,
        cv=3,
        method="predict_proba",
    )
    issues = find_label_issues(yk, probs, n_jobs=threads)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "version": version("cleanlab"),
        "scored": int(keep.sum()),
        "flagged": np.flatnonzero(keep)[issues].tolist(),
    }


WORKERS = {
    "phash": worker_phash,
    "cnn": worker_cnn,
    "fastdup": worker_fastdup,
    "cleanlab": worker_cleanlab,
}


def _run_worker(python: str, name: str, arg: str, threads: int) -> dict[str, Any]:
    """Run one worker in its own interpreter; its result, or why it was skipped."""
    if not Path(python).exists():
        return {"skipped": f"{python} not found (see the install commands in the docstring)"}
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = {**os.environ, "SENTRY_OPT_OUT": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [python, str(Path(__file__).resolve()), "--worker", name, arg, out, str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr, env=env, check=False)
    wall = round(time.perf_counter() - t0, 1)
    try:
        if proc.returncode:
            return {"skipped": f"worker {name} exited {proc.returncode} (see stderr)"}
        result = json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)
    result["wall_seconds"] = wall  # interpreter start and imports included
    return result


# --- scoring: facesieve's rules (lib/facesieve/evaluate/score.py) ----------------------------


def _near_scores(
    files: dict[str, Any], pairs: set[frozenset], sha: dict[str, str | None]
) -> dict[str, Any]:
    from facesieve.evaluate.metrics import Scores

    source_of = {p: t["of"] for p, t in files.items() if "of" in t}
    near = {
        p
        for p, t in files.items()
        if t["kind"] == "near_copy" or (t["kind"] == "refiled" and t.get("edit") != "exact")
    }
    exact = {
        p
        for p, t in files.items()
        if t["kind"] == "exact_copy" or (t["kind"] == "refiled" and t.get("edit") == "exact")
    }
    injected = near | exact
    pairs = {f for f in pairs if f <= files.keys()}
    either = {x for f in pairs for x in f}

    def same_bytes(f: frozenset) -> bool:
        a, b = (sha.get(x) for x in f)
        return a is not None and a == b

    judged = {f for f in pairs if not same_bytes(f)}
    right = [f for f in judged if len({source_of.get(x, x) for x in f}) == 1]
    wrong = [f for f in judged if f & injected and len({source_of.get(x, x) for x in f}) > 1]
    hits = sum(p in either for p in near)
    recall = hits / len(near) if near else 1.0
    by_edit: dict[str, list[bool]] = defaultdict(list)
    for p in near:
        by_edit[files[p].get("edit", "?")].append(p in either)
    return {
        **Scores.of(len(right) / len(judged) if judged else 1.0, recall).__dict__,
        "precision_without_source_pairs": round(len(right) / max(len(right) + len(wrong), 1), 4),
        "copies": len(near),
        "found": hits,
        "flagged_pairs": len(judged),
        "identical_pairs": len(pairs) - len(judged),
        "source_pairs": len(judged) - len(right) - len(wrong),
        "wrong_pairs": len(wrong),
        "exact_recall": round(sum(p in either for p in exact) / len(exact), 4) if exact else None,
        "by_edit": {e: round(sum(v) / len(v), 4) for e, v in sorted(by_edit.items())},
    }


def _per_source(files: dict[str, Any], fn) -> dict[str, Any]:
    out = {"all": fn(files)}
    for src in sorted({t["source"] for t in files.values()}):
        out[src] = fn({p: t for p, t in files.items() if t["source"] == src})
    return out


def _mislabeled_scores(files: dict[str, Any], flagged: set[str]) -> dict[str, Any]:
    from facesieve.evaluate.metrics import detection

    sub = flagged & files.keys()
    out: dict[str, Any] = {"flagged": len(sub)}
    for name, kinds in MISLABELED_POSITIVES.items():
        wrong = {p for p, t in files.items() if t["kind"] in kinds}
        out[name] = {**detection(sub, wrong).__dict__, "positives": len(wrong)}
    return out


def _facesieve(files: dict[str, Any], scores: dict[str, Any], labeled: bool) -> dict[str, Any]:
    nd = scores["near_duplicate"]
    out = {
        "near_duplicate": {
            k: nd[k]
            for k in (
                "precision",
                "recall",
                "f",
                "precision_without_source_pairs",
                "copies",
                "found",
                "flagged_pairs",
                "source_pairs",
                "wrong_pairs",
            )
        }
    }
    out["near_duplicate"]["exact_recall"] = scores["exact_duplicate"]["recall"]
    out["near_duplicate"]["by_edit"] = {e: v["recall"] for e, v in nd.get("by_edit", {}).items()}
    if labeled:
        ml = scores["mislabeled"]
        out["mislabeled"] = {k: ml[k] for k in ("precision", "recall", "f", "positives")}
    return out


# --- one eval folder --------------------------------------------------------------------------


def _subjects(out: Path, rows: list[dict[str, Any]]):
    """(image_id -> row index of its subject face, embedding matrix), facesieve's own faces."""
    import numpy as np
    import pyarrow.parquet as pq

    faces = pq.read_table(out / "faces", columns=["face_id", "image_id", "face_index", "embedding"])
    cluster_of = {
        c["face_id"]: c["cluster_id"]
        for c in pq.read_table(out / "clusters" / "faces.parquet")
        .select(["face_id", "cluster_id"])
        .to_pylist()
    }
    emb = np.asarray(faces["embedding"].combine_chunks().flatten(), np.float32)
    emb = np.ascontiguousarray(emb.reshape(faces.num_rows, -1))
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    by_image: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for i, (fid, iid, idx) in enumerate(
        zip(
            faces["face_id"].to_pylist(),
            faces["image_id"].to_pylist(),
            faces["face_index"].to_pylist(),
            strict=True,
        )
    ):
        by_image[iid].append((idx, fid, i))
    subject: dict[str, int] = {}
    for r in rows:
        cands = sorted(by_image.get(r["image_id"], []))
        if not cands:
            continue
        same = [i for _, fid, i in cands if cluster_of.get(fid) == r["cluster_id"]]
        subject[r["image_id"]] = same[0] if same and r["cluster_id"] is not None else cands[0][2]
    return subject, emb


def _cosine_pairs(x, names: list[str], tmin: float) -> list[tuple[str, str, float]]:
    import numpy as np

    pairs = []
    for i in range(0, len(x), 2048):
        s = x[i : i + 2048] @ x.T
        a, b = np.nonzero(s >= tmin)
        a_abs = a + i
        keep = b > a_abs
        for p, q, v in zip(a_abs[keep], b[keep], s[a[keep], b[keep]], strict=True):
            pairs.append((names[p], names[q], float(v)))
    return pairs


def evaluate(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from facesieve.evaluate.score import score

    truth = json.loads((folder / "truth.json").read_text())
    files = truth["files"]
    labeled = truth.get("layout") != "flat"
    out = folder / "out"
    data = folder / "data"
    rows = pq.read_table(out / "report" / "actions.parquet").to_pylist()
    root = os.path.commonpath([r["uri"] for r in rows] + [str(data.absolute())])
    if root != str(data.absolute()):
        root = str(data.resolve())
    rel = {r["uri"]: r["uri"][len(root) + 1 :] for r in rows}
    images = pq.read_table(out / "images", columns=["uri", "sha256"]).to_pylist()
    sha = {rel.get(i["uri"], i["uri"]): i["sha256"] for i in images}
    result: dict[str, Any] = {"folder": str(folder), "images": len(rows), "labeled": labeled}
    result["injected"] = dict(sorted(_count(t["kind"] for t in files.values()).items()))
    result["sources"] = dict(sorted(_count(t["source"] for t in files.values()).items()))

    fs_scores = score(truth, rows, root)
    run = json.loads((out / "run.json").read_text())
    by_src = fs_scores.get("by_source", {})
    fs = {"all": _facesieve(files, fs_scores["scores"], labeled)}
    for src in sorted({t["source"] for t in files.values()}):
        fs[src] = _facesieve(files, by_src[src]["scores"], labeled) if src in by_src else fs["all"]
    fs["run_seconds"] = run.get("seconds")
    result["facesieve"] = fs

    near: dict[str, Any] = {}
    subject, emb = _subjects(out, rows)
    with_face = [r for r in rows if r["image_id"] in subject]
    names = [rel[r["uri"]] for r in with_face]
    x = emb[[subject[r["image_id"]] for r in with_face]] if with_face else emb[:0]
    if "cosine" in args.peers:
        t0 = time.perf_counter()
        cpairs = _cosine_pairs(x, names, min(args.cosine))
        seconds = round(time.perf_counter() - t0, 2)
        for t in args.cosine:
            ps = {frozenset((a, b)) for a, b, s in cpairs if s >= t}
            near[f"cosine>={t:.2f}"] = {
                "seconds": seconds,
                "images_with_face": len(names),
                **_per_source(files, lambda f, ps=ps: _near_scores(f, ps, sha)),
            }
    for peer, worker, python in (
        ("imagededup_phash", "phash", args.imagededup_python),
        ("imagededup_cnn", "cnn", args.imagededup_python),
        ("fastdup", "fastdup", args.fastdup_python),
    ):
        if peer not in args.peers:
            continue
        log.info("%s: %s on %s", folder, peer, data)
        got = _run_worker(python, worker, str(data), args.threads)
        if "skipped" in got:
            near[peer] = got
            continue
        all_pairs = got.pop("pairs")
        settings = (
            [(f">={t:.2f}", t) for t in FASTDUP_THRESHOLDS] if worker == "fastdup" else [("", None)]
        )
        for label, t in settings:
            ps = {frozenset((a, b)) for a, b, s in all_pairs if t is None or s >= t}
            near[peer + label] = {
                **got,
                **_per_source(files, lambda f, ps=ps: _near_scores(f, ps, sha)),
            }
    result["near_duplicate"] = near

    if labeled:
        ours = {rel[r["uri"]] for r in rows if "mislabeled" in r["reasons"]}
        mis: dict[str, Any] = {
            "facesieve": _per_source(files, lambda f: _mislabeled_scores(f, ours))
        }
        theirs = fs["all"]["mislabeled"]
        if not any(
            all(v[k] == theirs[k] for k in ("precision", "recall", "positives"))
            for v in (mis["facesieve"]["all"][n] for n in MISLABELED_POSITIVES)
        ):
            log.warning("facesieve's score.py counts mislabeled positives another way: %s", theirs)
        result["mislabeled"] = mis
    if labeled and "cleanlab" in args.peers:
        lab = [
            (n, r["label"], i)
            for i, (n, r) in enumerate(zip(names, with_face, strict=True))
            if r["label"] is not None
        ]
        label_names = sorted({g for _, g, _ in lab})
        y = np.array([label_names.index(g) for _, g, _ in lab], np.int64)
        with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as f:
            npz = f.name
        np.savez(npz, x=x[[i for _, _, i in lab]], y=y)
        log.info("%s: cleanlab on %d faces", folder, len(lab))
        got = _run_worker(args.cleanlab_python, "cleanlab", npz, args.threads)
        Path(npz).unlink(missing_ok=True)
        if "skipped" not in got:
            flagged = {lab[i][0] for i in got.pop("flagged")}
            got.update(_per_source(files, lambda f: _mislabeled_scores(f, flagged)))
        result["mislabeled"]["cleanlab"] = got
    return result


def _count(items) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return dict(out)


# --- output -----------------------------------------------------------------------------------


def table(result: dict[str, Any]) -> str:
    lines = []
    for kind, res in result["kinds"].items():
        srcs = ["all", *res["sources"]] if len(res["sources"]) > 1 else ["all"]
        lines.append(f"\n## {kind} / {result['part']}: near duplicates ({res['images']} images)")
        lines.append("| tool | data | pairs | src pairs | P | P w/o src | R | exact R | s |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        tools = {"facesieve": {s: res["facesieve"][s]["near_duplicate"] for s in srcs}}
        tools["facesieve"]["seconds"] = res["facesieve"]["run_seconds"]
        tools.update(res["near_duplicate"])
        for tool, v in tools.items():
            if "skipped" in v:
                lines.append(f"| {tool} | skipped: {v['skipped'][:90]} |")
                continue
            for s in srcs:
                sc = v[s]
                lines.append(
                    f"| {tool} | {s} | {sc['flagged_pairs']} | {sc['source_pairs']} | "
                    f"{sc['precision']:.3f} | {sc['precision_without_source_pairs']:.3f} | "
                    f"{sc['recall']:.3f} ({sc['found']}/{sc['copies']}) | {sc['exact_recall']} | "
                    f"{v.get('seconds', '') if s == 'all' else ''} |"
                )
        if res["labeled"] and "mislabeled" in res:
            lines.append(f"\n## {kind} / {result['part']}: mislabeled")
            lines.append(
                "| tool | data | flagged | positives | P | R | F | positives +refiled | P | R | F"
                " | s |"
            )
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
            for tool, v in res["mislabeled"].items():
                if "skipped" in v:
                    lines.append(f"| {tool} | skipped: {v['skipped'][:90]} |")
                    continue
                secs = res["facesieve"]["run_seconds"] if tool == "facesieve" else v["seconds"]
                for s in srcs:
                    a, b = (v[s][n] for n in MISLABELED_POSITIVES)
                    lines.append(
                        f"| {tool} | {s} | {v[s]['flagged']} | "
                        + " | ".join(
                            f"{x['positives']} | {x['precision']:.3f} | {x['recall']:.3f} | "
                            f"{x['f']:.3f}"
                            for x in (a, b)
                        )
                        + f" | {secs if s == 'all' else ''} |"
                    )
    lines.append(
        "\nP: right pairs / flagged pairs (byte-identical pairs left out of a peer's); P w/o src:"
        " without pairs of two untouched source images; R: near copies in any flagged pair;"
        " s: facesieve's whole run (embedding included), the cosine pair search alone (on"
        " facesieve's embeddings), each peer's own call (wall_seconds in the JSON adds imports)."
        " Mislabeled positives: moved + swapped, then with refiled copies (score.py's count)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="a `facesieve eval --out` folder")
    ap.add_argument("--part", default="test", help="calibration, test or all")
    ap.add_argument("--kind", action="append", choices=KINDS, help="default: every kind found")
    ap.add_argument(
        "--peers",
        default="cosine,imagededup_phash,imagededup_cnn,fastdup,cleanlab",
        type=lambda s: s.split(","),
    )
    ap.add_argument("--cosine", type=float, nargs="+", default=[0.85, 0.90, 0.95])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table", action="store_true", help="also print a short table on stderr")
    for opt, default in PYTHONS.values():
        ap.add_argument(opt, default=default)
    args = ap.parse_args(argv)
    kinds = args.kind or [k for k in KINDS if (args.work / k / args.part / "truth.json").exists()]
    result: dict[str, Any] = {"work": str(args.work), "part": args.part, "kinds": {}}
    for kind in kinds:
        result["kinds"][kind] = evaluate(args.work / kind / args.part, args)
    print(json.dumps(result, indent=1))
    if args.table:
        print(table(result), file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        _, _, name, arg, out, threads = sys.argv
        Path(out).write_text(json.dumps(WORKERS[name](arg, int(threads))))
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        main()
