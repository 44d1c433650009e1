"""``facesieve clean OUT``: actions, summary and the HTML report under ``OUT/report/``.

A rerun with the same clusters, images and thresholds returns at once: the summary records a
key of its inputs and is written last.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from facesieve.clean.inputs import load_inputs
from facesieve.clean.rules import Decision, decide
from facesieve.cluster.job import META_KEY as CLUSTER_META
from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.index.build import faces_shards
from facesieve.runner.shard_task import parquet_bytes
from facesieve.storage import open_store
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

ACTIONS_KEY = "report/actions.parquet"
ACTIONS_CSV = "report/actions.csv"
SUMMARY_KEY = "report/summary.json"
HTML_KEY = "report/index.html"
VERSION = 2  # bump when the same inputs and thresholds give a different report


@dataclass(frozen=True)
class CleanResult:
    summary: dict[str, Any]
    up_to_date: bool = False


def _cluster_state(out: Store) -> tuple[str, str | None]:
    """(key, mode) of the clusters the report builds on; no faces at all means no clusters."""
    if out.exists(CLUSTER_META):
        meta = json.loads(out.read_bytes(CLUSTER_META))
        return meta["key"], meta["summary"]["mode"]
    if any(s.count for s in faces_shards(out)):
        raise ConfigError(f"no clusters under {out.root_uri}: run `facesieve cluster` first")
    return "no-faces", None


def _input_key(out: Store, config: Config, cluster_key: str) -> str:
    images = sorted((i.key, i.size) for i in out.list("images/") if i.key.endswith(".parquet"))
    blob = json.dumps(
        {"v": VERSION, "clusters": cluster_key, "images": images, "clean": asdict(config.clean)}
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def csv_bytes(actions: pa.Table) -> bytes:
    """The action list as CSV: ``reasons`` joined with ';'."""
    reasons = [";".join(r) for r in actions.column("reasons").to_pylist()]
    table = actions.set_column(
        actions.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.string())
    )
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def summarize(decision: Decision, statuses: list[str], mode: str, seconds: float) -> dict[str, Any]:
    a = decision.actions
    reasons = Counter(r for rs in a.column("reasons").to_pylist() for r in rs)
    return {
        "mode": mode,
        "images": a.num_rows,
        "status": dict(sorted(Counter(statuses).items())),
        "actions": dict(sorted(Counter(a.column("action").to_pylist()).items())),
        "reasons": dict(sorted(reasons.items())),
        "labels": len(decision.label_names),
        "duplicates": {
            "exact": len(decision.duplicates.exact),
            "near": len(decision.duplicates.near),
            "candidate_face_pairs": decision.duplicates.candidates,
            "pairs_compared": decision.duplicates.checked,
        },
        "timings": {**decision.timings, "total_s": round(seconds, 3)},
        "throughput": {"images_per_s": round(a.num_rows / seconds, 1) if seconds else None},
    }


def run_clean(out_uri: str, config: Config, html: bool = True) -> CleanResult:
    started = time.perf_counter()
    out = open_store(out_uri, config.run.s3_endpoint)
    cluster_key, mode = _cluster_state(out)
    key = _input_key(out, config, cluster_key)
    if out.exists(SUMMARY_KEY) and out.exists(ACTIONS_KEY):
        previous = json.loads(out.read_bytes(SUMMARY_KEY))
        if previous.get("key") == key:
            log.info("report is up to date")
            return CleanResult(previous, up_to_date=True)
    inp = load_inputs(out)
    if mode is None:
        labeled = inp.images.column("label").null_count <= inp.n_images / 2
        mode = "labeled" if labeled else "unlabeled"
    decision = decide(inp, config.clean, mode, config.run.s3_endpoint, config.source.max_pixels)
    out.write_bytes(ACTIONS_KEY, parquet_bytes(decision.actions))
    out.write_bytes(ACTIONS_CSV, csv_bytes(decision.actions))
    statuses = inp.images.column("status").to_pylist()
    summary = summarize(decision, statuses, mode, time.perf_counter() - started)
    summary["thresholds"] = asdict(config.clean)
    summary["output"] = out.root_uri
    if html:
        from facesieve.report.html import render_report

        t = time.perf_counter()
        page = render_report(inp, decision, summary, config)
        out.write_bytes(HTML_KEY, page.encode("utf-8"))
        summary["timings"]["report_s"] = round(time.perf_counter() - t, 3)
    summary["timings"]["total_s"] = round(time.perf_counter() - started, 3)
    summary["key"] = key
    out.write_bytes(SUMMARY_KEY, json.dumps(summary, indent=1).encode())
    return CleanResult(summary)


def read_actions(out: Store) -> pa.Table:
    return pq.read_table(io.BytesIO(out.read_bytes(ACTIONS_KEY)))
