"""The report step (``facesieve clean OUT``): actions, summary, changes and the HTML page.

Writes under ``OUT/report/``: ``actions.parquet`` and ``.csv`` (one row per input file),
``summary.json``, ``changes.parquet`` (since the previous report, ``report.changes``),
the review page (``index.html``, ``review.js``/``.css``, ``data/``, ``thumbs/``; see
``facesieve.report.site``), the snapshot ``state.parquet`` and ``pixel_scores.parquet``
(near-duplicate pixel scores kept for the next report, ``clean.pixel_cache``). The unit's
digest covers the clusters, every embed shard and the thresholds, so an unchanged output root is
not reported again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from facesieve.clean.inputs import CleanInputs, load_inputs
from facesieve.clean.pixel_cache import PIXEL_SCORES_KEY, load_scores, scores_bytes
from facesieve.clean.rules import Decision, decide
from facesieve.cluster.job import cluster_summary
from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.outputs import parquet_bytes, read_parquet
from facesieve.redact import redact_uri
from facesieve.report.changes import CHANGES_KEY, STATE_KEY, compare, state_table
from facesieve.report.changes import counts as change_counts
from facesieve.report.html import render_index
from facesieve.report.review_data import review_inputs
from facesieve.report.site import ASSETS, DATA, THUMBS, write_site
from facesieve.storage.base import Store
from facesieve.work import Marker, Resources, Unit, UnitOutput, digest, read_markers
from facesieve.work.contract import Progress

log = logging.getLogger(__name__)

ACTIONS_KEY = "report/actions.parquet"
ACTIONS_CSV = "report/actions.csv"
SUMMARY_KEY = "report/summary.json"
HTML_KEY = "report/index.html"
ASSET_KEYS = [f"report/{name}" for name in ASSETS]
UNIT = "report"
VERSION = 7  # bump when the same inputs and thresholds give a different report


def csv_bytes(actions: pa.Table) -> bytes:
    """The action list as CSV: ``reasons`` joined with ';', and every text cell safe to open in
    a spreadsheet: one that starts with ``= + - @``, a tab or a carriage return gets a leading
    apostrophe (OWASP's CSV-injection rule), since file names and labels come from the data.
    Number columns (a negative score) and text that is a plain number are left as they are."""
    reasons = [";".join(r) for r in actions.column("reasons").to_pylist()]
    table = actions.set_column(
        actions.schema.get_field_index("reasons"), "reasons", pa.array(reasons, pa.string())
    )
    for i, column in enumerate(table.schema):
        if pa.types.is_string(column.type):
            cells = [_spreadsheet_safe(v) for v in table.column(i).to_pylist()]
            table = table.set_column(i, column, pa.array(cells, pa.string()))
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _spreadsheet_safe(cell: str | None) -> str | None:
    if cell and cell.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


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
            "candidate_pairs": decision.duplicates.candidates,  # from faces and photos
            "pairs_compared": decision.duplicates.checked,
            "pairs_scored_earlier": decision.duplicates.reused,
        },
        "timings": {**decision.timings, "total_s": round(seconds, 3)},
        "throughput": {"images_per_s": round(a.num_rows / seconds, 1) if seconds else None},
    }


class CleanStep:
    """One unit: the action list, summary, change report and HTML page of the whole output."""

    name = "clean"
    item_name = ""
    owned_prefixes = ()

    def __init__(
        self, out: Store, config: Config, cluster_digest: str, graph_shards: list[str], faces: int
    ) -> None:
        self.out, self.config = out, config
        self.cluster_digest, self.graph_shards = cluster_digest, graph_shards
        # the tables, the graph and the rules' arrays (the embeddings stay on disk): measured
        # in docs/BENCHMARKS.md "Memory of the global steps"
        self.resources = Resources(cpus=1.0, memory_gb=round(faces * 5.0e-6 + 0.5, 1))

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        images = sorted((m.unit_id, m.digest) for m in read_markers(self.out, "embed").values())
        report = {"rows": self.config.clean.report_rows}
        d = digest(
            self.name, VERSION, self.cluster_digest, images, asdict(self.config.clean), report
        )
        return [Unit(UNIT, d, "clean and report")]

    def setup(self, device: str, threads: int) -> None:
        pass

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        started = time.perf_counter()
        out = self.out
        previous = _state(out)
        if previous is not None and _digest_of(previous) == unit.digest:
            # every file was written by an earlier attempt that died before its marker
            summary = json.loads(out.read_bytes(SUMMARY_KEY))
            site = [o.key for p in (DATA, THUMBS) for o in out.list(p)]
            return UnitOutput(_stats(summary), sorted({*OUTPUTS, *site, *ASSET_KEYS}), {})
        inp = load_inputs(out, self.graph_shards)
        try:
            return self._report(unit, inp, previous, started, progress)
        finally:
            inp.emb.close()  # its file on local disk (2 KB a face) goes now, not at exit

    def _report(
        self,
        unit: Unit,
        inp: CleanInputs,
        previous: pa.Table | None,
        started: float,
        progress: Progress,
    ) -> UnitOutput:
        out, config = self.out, self.config
        mode = cluster_mode(out, self.graph_shards, inp)
        max_pixels = config.source.max_pixels
        known = load_scores(out, max_pixels)
        decision = decide(inp, config.clean, mode, config.run.s3_endpoint, max_pixels, known)
        state = state_table(inp.images, decision.actions)
        changes = compare(previous, state)
        statuses = inp.images.column("status").to_pylist()
        summary = summarize(decision, statuses, mode, time.perf_counter() - started)
        summary["changes"] = change_counts(changes)
        summary["thresholds"] = asdict(config.clean)
        summary["output"] = redact_uri(out.root_uri)
        out.write_bytes(CHANGES_KEY, parquet_bytes(changes))
        out.write_bytes(ACTIONS_KEY, parquet_bytes(decision.actions))
        out.write_bytes(ACTIONS_CSV, csv_bytes(decision.actions))
        out.write_bytes(PIXEL_SCORES_KEY, scores_bytes(decision.duplicates.scores, max_pixels))
        t = time.perf_counter()
        summary["report_id"] = report_id(out.root_uri, unit.digest)
        info = {"report": summary["report_id"], "output": out.root_uri}
        page = render_index(summary, changes, summary["report_id"])
        ri = review_inputs(inp, decision)
        site = write_site(
            out, ri, page, info, config.clean.report_rows, max_pixels, config.run.s3_endpoint
        )
        summary["timings"]["report_s"] = round(time.perf_counter() - t, 3)
        summary["timings"]["total_s"] = round(time.perf_counter() - started, 3)
        out.write_bytes(SUMMARY_KEY, json.dumps(summary, indent=1).encode())
        # the snapshot goes last: the next report compares itself with it
        state = state.replace_schema_metadata({DIGEST_META: unit.digest})
        out.write_bytes(STATE_KEY, parquet_bytes(state))
        progress(1)
        return UnitOutput(_stats(summary), sorted({*OUTPUTS, *site}), {})


def report_id(root_uri: str, unit_digest: str) -> str:
    """Names one report: its output root and what it was made from. The review page keys its
    saved decisions by it, so two reports never mix, and the same report made again keeps them."""
    return hashlib.sha256(f"{root_uri}\n{unit_digest}".encode()).hexdigest()[:16]


OUTPUTS = [
    CHANGES_KEY,
    ACTIONS_KEY,
    ACTIONS_CSV,
    PIXEL_SCORES_KEY,
    HTML_KEY,
    SUMMARY_KEY,
    STATE_KEY,
]
DIGEST_META = "facesieve.digest"


def _state(out: Store) -> pa.Table | None:
    return read_parquet(out, STATE_KEY) if out.exists(STATE_KEY) else None


def _digest_of(state: pa.Table) -> str:
    return (state.schema.metadata or {}).get(DIGEST_META.encode(), b"").decode()


def _stats(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "images": summary["images"],
        "actions": summary["actions"],
        "reasons": summary["reasons"],
    }


def cluster_mode(out: Store, graph_shards: list[str], inp: CleanInputs) -> str:
    """The clustering's mode; without faces, labeled when most images carry a label."""
    if graph_shards:
        summary = cluster_summary(out)
        if summary is None:
            raise ConfigError(f"no clusters under {out.root_uri}: run `facesieve cluster` first")
        return str(summary["mode"])
    labeled = inp.images.column("label").null_count <= inp.n_images / 2
    return "labeled" if labeled else "unlabeled"


def read_summary(out: Store) -> dict[str, Any]:
    return dict(json.loads(out.read_bytes(SUMMARY_KEY)))


def read_actions(out: Store) -> pa.Table:
    return read_parquet(out, ACTIONS_KEY)
