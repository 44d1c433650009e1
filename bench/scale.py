"""Scale: the global stages (index, kNN graph, cluster, clean) over N synthetic faces, timed, with
the peak memory of every process they use and the kNN graph's same-identity recall.

N faces are drawn as identities (5-35 faces each) on the sphere with
``facesieve.devtools.synthetic``, calibrated on the cosine statistics of the real LFW embeddings
(the same model as bench/index_bench.py), and written as faces shards of 1,000 with done-markers,
as `facesieve embed` writes them, 100,000 at a time. Then `facesieve run`'s index, cluster and
clean stages run on them in one run with the default config (Ray, a local runtime over every
core, unless ``--runner local``). A stage's time is the sum of its steps' (index: index-train and
index-fill; knn: knn and knn-refresh; cluster; clean); ``wall_s`` is the whole run's, which also
holds starting Ray and the reads and writes between steps.

Memory: a sampler thread sums the proportional set size (Pss, /proc/PID/smaps_rollup: shared
pages split between the processes that map them) of this process and every process below it
(Ray's GCS, raylet and workers) every 0.25 s; ``peak_rss_gb`` is the largest sum, generation of
the faces excluded, and ``peak_gb_by_step`` the largest while each step ran.

Recall: ``--queries`` faces drawn at random; their exact K nearest faces are computed by streaming
every faces shard (float32 products), and ``knn_same_identity_recall`` is the share of those of
the query's own identity that the graph row holds.

    python bench/scale.py --faces 1000000 --json [--work DIR] [--runner ray|local]
        [--stages index,cluster,clean]   # fewer stages: only those are run and timed
        [--keep]   # keep the last run's outputs: the run redoes only what changed (its
                   # done-markers), e.g. --stages clean --keep after --stages index,cluster,
                   # or --nprobe 64 --keep to redo only the graph; stages not redone are
                   # listed in "kept"
        [--nprobe N]   # index.nprobe instead of the index's rule
    python bench/scale.py --plot docs/scale.png [--work DIR]   # every result in DIR/results.jsonl

Each run appends its JSON line to DIR/results.jsonl; ``--plot`` draws time per stage and peak
memory against N from it (needs matplotlib: ``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from facesieve.config import Config
from facesieve.devtools.synthetic import (
    LFW_COSINE_STATS,
    calibrate,
    identity_chunks,
    identity_labels,
    write_embed_output,
)
from facesieve.runner.pipeline import run_command
from facesieve.storage import LocalStore

log = logging.getLogger("bench.scale")

SHARD = 1000
KEEP = ("faces", "images", "_done", "synthetic.json")  # what a fresh run starts from


class PeakMemory(logging.Handler):
    """The largest Pss sum of this process and its descendants, sampled on a thread, overall and
    per step: the executor's "<step>: N units, ..." line marks where each step starts."""

    def __init__(self, every_s: float = 0.25) -> None:
        super().__init__(logging.INFO)
        self.every_s, self.peak = every_s, 0
        self.step, self.by_step = "", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._logger = logging.getLogger("facesieve.runner.executor")

    def __enter__(self) -> PeakMemory:
        self._level = self._logger.level
        self._logger.setLevel(logging.INFO)  # its start lines, whatever the root level
        self._logger.addHandler(self)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if " units, " in text:
            self.step = text.split(":", 1)[0]
            self._sample()  # every step gets a figure, however short

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def _sample(self) -> None:
        pss = tree_pss(os.getpid())
        self.peak = max(self.peak, pss)
        if self.step:
            self.by_step[self.step] = max(self.by_step.get(self.step, 0), pss)


def tree_pss(root: int) -> int:
    """Pss bytes of ``root`` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def generate(out: Path, n: int, keep: bool = False) -> np.ndarray:
    """Write N synthetic faces under ``out`` (kept between runs of the same N); their labels.
    ``keep``: every output of the previous run stays, and the run redoes only what its
    done-markers and digests say changed (the pipeline's own resumption)."""
    model = calibrate(LFW_COSINE_STATS)
    labels = identity_labels(model, n)
    marker = out / "synthetic.json"
    made = marker.exists() and json.loads(marker.read_text()).get("n") == n
    if keep and not made:
        raise SystemExit(f"--keep: no earlier run of {n} faces under {out.parent}")
    if keep:
        return labels
    if made:
        for entry in out.iterdir():  # a fresh run: only the embed outputs stay
            if entry.name in KEEP:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for step in (out / "_done").iterdir():
            if step.name != "embed":
                shutil.rmtree(step)
        return labels
    shutil.rmtree(out, ignore_errors=True)
    store = LocalStore(out)
    t = time.perf_counter()
    for start, emb in identity_chunks(model, labels):
        write_embed_output(store, emb, labels[start : start + len(emb)], SHARD, start // SHARD)
        log.info("generated %d / %d faces", start + len(emb), n)
    marker.write_text(json.dumps({"n": n, "model": model.__dict__}))
    log.info("generated %d faces in %.0f s", n, time.perf_counter() - t)
    return labels


STEPS = {"index": ("index-train", "index-fill"), "knn": ("knn", "knn-refresh"),
         "cluster": ("cluster",), "clean": ("clean",)}  # fmt: skip


RUN_STAGES = ("index", "cluster", "clean")  # `facesieve run`'s global stages (index: + knn)


def stage_times(out: Path, cfg: Config, stages: tuple[str, ...]) -> tuple[dict[str, float], float]:
    """Seconds of each global stage run (the sum of its steps') and of the whole run, which
    also holds starting Ray and writing the manifest between steps: one `facesieve run` without
    its embed stage. A stage none of whose steps had a unit to do (done by an earlier run, with
    ``--keep``) is left out."""
    t = time.perf_counter()
    result = run_command("run", str(out), cfg, stages=stages, show_progress=False)
    wall = time.perf_counter() - t
    if result.stopped or any(r.failed for r in result.steps.values()):
        raise RuntimeError(f"the run failed: {result.stopped}")
    ran = {k: v for k, v in STEPS.items() if all(s in result.steps for s in v)}
    ran = {k: v for k, v in ran.items() if any(result.steps[s].processed for s in v)}
    times = {k: round(sum(result.steps[s].seconds for s in v), 1) for k, v in ran.items()}
    return times, round(wall, 1)


def same_identity_recall(out: Path, labels: np.ndarray, queries: int, k: int) -> float:
    """Share of each sampled face's exact K nearest faces of its own identity that its graph
    row holds. Faces are numbered by their order in the shards (sorted by part number), which is
    the order their labels were drawn in."""
    shards = sorted(out.glob("faces/*.parquet"), key=_part)
    ids = [_column(path, "index_id") for path in shards]
    starts = np.cumsum([0] + [len(i) for i in ids])
    all_ids = np.concatenate(ids)
    order = np.argsort(all_ids)
    rng = np.random.default_rng(7)
    picked = np.sort(rng.choice(len(all_ids), min(queries, len(all_ids)), replace=False))
    where = np.searchsorted(starts, picked, side="right") - 1  # the shard of each query
    q_emb = np.empty((len(picked), 512), np.float32)
    for s in np.unique(where):
        q_emb[where == s] = _embeddings(shards[s])[picked[where == s] - starts[s]]
    best_s = np.full((len(picked), k + 1), -np.inf, np.float32)
    best_r = np.full((len(picked), k + 1), -1, np.int64)
    for s, path in enumerate(shards):  # exact top K+1 (the face itself included), streamed
        sims = q_emb @ _embeddings(path).T
        both_s = np.concatenate([best_s, sims], 1)
        rows = np.broadcast_to(starts[s] + np.arange(sims.shape[1]), sims.shape)
        both_r = np.concatenate([best_r, rows], 1)
        top = np.argpartition(-both_s, k, axis=1)[:, : k + 1]
        best_s, best_r = np.take_along_axis(both_s, top, 1), np.take_along_axis(both_r, top, 1)
    wanted = found = 0
    for s in np.unique(where):
        graph = pq.read_table(out / "index" / "knn" / shards[s].name)
        graph_ids = graph.column("id").to_numpy()
        nb = graph.column("neighbor_ids").combine_chunks().flatten().to_numpy()
        nb = nb.reshape(len(graph_ids), -1)
        for qi in np.flatnonzero(where == s):
            row = int(picked[qi])
            mine = nb[int(np.flatnonzero(graph_ids == all_ids[row])[0])]
            mine = mine[mine >= 0]
            graph_rows = set(order[np.searchsorted(all_ids[order], mine)].tolist())
            truth = {int(r) for r in best_r[qi] if r != row and labels[r] == labels[row]}
            wanted += len(truth)
            found += len(truth & graph_rows)
    return round(found / max(wanted, 1), 4)


def _column(path: Path, name: str) -> np.ndarray:
    return pq.read_table(path, columns=[name]).column(name).to_numpy()


def _part(path: Path) -> int:
    from facesieve.schema import shard_number_of

    return int(shard_number_of(_column(path, "index_id")[:1])[0])


def _embeddings(path: Path) -> np.ndarray:
    column = pq.read_table(path, columns=["embedding"]).column("embedding").combine_chunks()
    return column.flatten().to_numpy().reshape(-1, 512)


def measure(
    n: int,
    work: Path,
    runner: str,
    queries: int,
    stages: tuple[str, ...] = RUN_STAGES,
    keep: bool = False,
    nprobe: int | None = None,
) -> dict[str, Any]:
    out = work / f"faces-{n}"
    labels = generate(out, n, keep)
    cfg = Config().with_overrides("run", runner=runner).with_overrides("index", nprobe=nprobe)
    cfg = cfg.validate()
    with PeakMemory() as memory:
        times, wall = stage_times(out, cfg, stages)
    k = cfg.index.knn_k
    manifest = json.loads((out / "index" / "manifest.json").read_text())
    return {
        "faces": n,
        "stages": times,
        "wall_s": wall,
        "peak_rss_gb": round(memory.peak / 2**30, 2),
        "peak_gb_by_step": {k: round(v / 2**30, 2) for k, v in memory.by_step.items()},
        "knn_same_identity_recall": (
            same_identity_recall(out, labels, queries, k) if "knn" in times else None
        ),
        "factory": manifest.get("factory"),
        "nprobe": cfg.index.nprobe or manifest.get("params", {}).get("nprobe"),
        "knn_k": k,
        "runner": runner,
        "kept": [s for s in STEPS if s not in times] if keep else [],
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def plot(results: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest: dict[int, dict[str, Any]] = {}  # the last run of each N, a full one if there is one
    for r in results:
        prev = latest.get(r["faces"])
        if r.get("kept") and prev is not None:  # the later part of a run measured in two
            peak = max(prev["peak_rss_gb"], r["peak_rss_gb"])
            stages = {**prev["stages"], **r["stages"]}
            latest[r["faces"]] = {**r, "stages": stages, "peak_rss_gb": peak}
        elif len(r["stages"]) == len(STEPS) or prev is None or len(prev["stages"]) < len(STEPS):
            latest[r["faces"]] = r
    ns = sorted(latest)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage in ("index", "knn", "cluster", "clean"):
        have = [n for n in ns if stage in latest[n]["stages"]]
        left.plot(have, [latest[n]["stages"][stage] for n in have], marker="o", label=stage)
    full = [n for n in ns if len(latest[n]["stages"]) == len(STEPS)]
    total = [sum(latest[n]["stages"].values()) for n in full]
    left.plot(full, total, "k--", marker="o", label="all")
    right.plot(ns, [latest[n]["peak_rss_gb"] for n in ns], marker="o", color="tab:red")
    panels = ((left, "time per stage", "seconds", "log"), (right, "peak memory", "GB", "linear"))
    for ax, title, unit, yscale in panels:
        ax.set(xscale="log", yscale=yscale, xlabel="faces", ylabel=unit, title=title)
        ax.grid(True, which="both", alpha=0.3)
    right.set_ylim(bottom=0)
    left.legend()
    cpus = {r["cpus"] for r in latest.values()}
    fig.suptitle(f"facesieve global stages on synthetic faces ({'/'.join(map(str, cpus))} cores)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--faces", type=int, help="how many synthetic faces")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--work", type=Path, default=Path(".bench/scale"), help="outputs and results")
    ap.add_argument("--runner", choices=("ray", "local"), default="ray")
    ap.add_argument("--queries", type=int, default=1000, help="faces whose graph rows are checked")
    ap.add_argument("--plot", type=Path, help="draw every result in WORK/results.jsonl to a PNG")
    ap.add_argument(
        "--stages",
        default=",".join(RUN_STAGES),
        help="which of index (with the kNN graph), cluster, clean to run (default: all)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the last run's outputs (same --faces): only what changed is redone",
    )
    ap.add_argument("--nprobe", type=int, help="index.nprobe (default: the index's own rule)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO, stream=sys.stderr)
    results = args.work / "results.jsonl"
    if args.plot:
        plot([json.loads(line) for line in results.read_text().splitlines() if line], args.plot)
        return 0
    if not args.faces:
        ap.error("--faces N or --plot PNG")
    args.work.mkdir(parents=True, exist_ok=True)
    stages = tuple(x for x in args.stages.split(",") if x)
    if not stages or set(stages) - set(RUN_STAGES) or ("index" not in stages and not args.keep):
        ap.error(f"--stages: some of {', '.join(RUN_STAGES)}, index among them unless --keep")
    result = measure(
        args.faces, args.work, args.runner, args.queries, stages, args.keep, args.nprobe
    )
    with results.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
