"""``OUT/report/index.html``: one self-contained page a person can review and act on.

Totals first, then how to apply the actions, then one section per reason with face thumbnails
next to their evidence: a duplicate beside the copy that is kept, a mislabeled face beside faces
of its label and of the suggested label. Every string that comes from the data (paths, labels,
errors) goes through ``html.escape``; thumbnails are inline data URIs, so the page needs no
network and no other file. A small inline script records broken images and script errors on
``<body>`` (``data-broken-images``, ``data-errors``), which the headless-browser test reads.
"""

from __future__ import annotations

import html
import logging
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from facesieve.clean.actions import REASONS
from facesieve.clean.fetch import fetch_bytes
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.rules import Decision
from facesieve.config import Config
from facesieve.report.thumbs import thumbnail

log = logging.getLogger(__name__)

EXAMPLES = 3  # faces shown for a label's identity

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{margin:0 0 4px}h2{margin-top:32px;border-bottom:2px solid #ddd}
table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;width:max-content}
.row{display:flex;gap:10px;align-items:flex-start}
figure{margin:0;text-align:center;font-size:11px;max-width:110px;word-break:break-all}
img{width:96px;height:96px;object-fit:cover;border-radius:4px;background:#ccc;display:block}
.grp{border-left:3px solid #bbb;padding-left:8px}.grp b{display:block;font-size:11px}
.act{font-weight:600}.drop{color:#b00}.relabel{color:#a60}.review{color:#05a}.keep{color:#070}
pre{background:#f0f0f0;padding:10px;overflow:auto}.muted{color:#777}
"""

SCRIPT = """
window.__errors=0;window.addEventListener('error',function(){window.__errors++},true);
window.addEventListener('load',function(){var n=0;document.querySelectorAll('img').forEach(
function(i){if(!i.complete||i.naturalWidth===0)n++});document.body.dataset.brokenImages=n;
document.body.dataset.errors=window.__errors;document.body.dataset.loaded='1'});
"""

APPLY = """import pyarrow.parquet as pq, shutil, os
actions = pq.read_table("{out}/report/actions.parquet").to_pandas()
for row in actions.itertuples():
    if row.action == "drop":
        os.remove(row.uri)                       # or move it to a quarantine folder
    elif row.action == "relabel":
        dest = os.path.join(os.path.dirname(os.path.dirname(row.uri)), row.suggested_label)
        os.makedirs(dest, exist_ok=True)
        shutil.move(row.uri, dest)
# "review": look at the rows below; "keep": nothing to do"""

DESCRIPTIONS = {
    "decode_error": "The file could not be read as an image (corrupt, truncated, not an image).",
    "no_face": "No face was detected.",
    "low_quality": "The face is too small, blurred or uncertain to be used.",
    "exact_duplicate": "Byte-identical copy of the image on the right, which is kept.",
    "near_duplicate": "The same photograph, edited (re-saved, resized, cropped, padded, mirrored, "
    "rotated, recoloured, grey, blurred, sharpened, captioned or watermarked); the best copy "
    "(right) is kept.",
    "mislabeled": "The face matches another label's identity and not its own: relabel it.",
    "outlier": "No support for the label: the face matches neither its label nor any other "
    "(small faces need less support: their embeddings are weaker evidence).",
    "label_has_multiple_identities": "The label holds a second, distinct person (these faces).",
    "identity_split_across_labels": "This label is the same person as the suggested label.",
    "duplicate_across_labels": "The same photograph is filed under several labels (shown with "
    "each copy): at most one of them can be right. The kept copy is marked for review; the "
    "others are dropped as duplicates.",
    "multiple_faces": "More than one usable face; the labeled subject is the one shown.",
}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


class _Page:
    def __init__(self, inp: CleanInputs, decision: Decision, config: Config) -> None:
        self.inp, self.d, self.cfg = inp, decision, config
        self.uris = inp.images.column("uri").to_pylist()
        self.ids = inp.images.column("image_id").to_pylist()
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        boxes = np.asarray(inp.faces.column("bbox").combine_chunks().flatten(), np.float32)
        self.boxes = boxes.reshape(-1, 4)
        self.thumbs: dict[int, str | None] = {}
        self.examples: dict[int, list[int]] = defaultdict(list)  # label code -> image rows
        if decision.identities is not None and len(inp.face_image):
            for f in np.flatnonzero(decision.identities.member):
                img = int(inp.face_image[f])
                lab = int(decision.image_label[img])
                if len(self.examples[lab]) < EXAMPLES + 1:
                    self.examples[lab].append(img)
        self.label_code = {n: i for i, n in enumerate(decision.label_names)}
        self.copies: dict[int, list[int]] = defaultdict(list)  # kept row -> its group
        for r, keep in sorted(decision.duplicates.across_labels.items()):
            self.copies[keep].append(r)
        self.labels = inp.images.column("label").to_pylist()

    def load_thumbs(self, rows: set[int]) -> None:
        data = fetch_bytes([self.uris[r] for r in rows], self.cfg.run.s3_endpoint)
        for r in rows:
            f = int(self.d.subject[r])
            bbox = self.boxes[f] if f >= 0 else None
            self.thumbs[r] = thumbnail(data.get(self.uris[r]), bbox, self.cfg.source.max_pixels)

    def figure(self, row: int, caption: str | None = None) -> str:
        src = self.thumbs.get(row)
        name = self.uris[row].rsplit("/", 1)[-1]
        img = f'<img src="{src}" alt="{_e(name)}">' if src else '<div class="muted">no image</div>'
        return (
            f'<figure title="{_e(self.uris[row])}">{img}'
            f"<figcaption>{_e(caption or name)}</figcaption></figure>"
        )

    def group(self, title: str, rows: list[int]) -> str:
        figs = "".join(self.figure(r) for r in rows)
        return f'<div class="grp"><b>{_e(title)}</b><div class="row">{figs}</div></div>'

    def evidence_rows(
        self, reason: str, row: int, rec: dict[str, Any]
    ) -> list[tuple[str, list[int]]]:
        own = self.label_code.get(rec["label"]) if rec["label"] is not None else None
        same = (
            [r for r in self.examples.get(own, []) if r != row][:EXAMPLES]
            if own is not None
            else []
        )
        if reason in ("exact_duplicate", "near_duplicate") and rec["duplicate_of"] in self.row_of:
            return [("kept copy", [self.row_of[rec["duplicate_of"]]])]
        if reason == "duplicate_across_labels":
            group = self.copies.get(self.d.duplicates.across_labels.get(row, -1), [])
            return [(f"label {self.labels[r]}", [r]) for r in group if r != row]
        if reason in ("mislabeled", "identity_split_across_labels"):
            sug = self.label_code.get(rec["suggested_label"])
            other = self.examples.get(sug, [])[:EXAMPLES] if sug is not None else []
            groups = [(f"label {rec['suggested_label']} (suggested)", other)]
            return ([(f"label {rec['label']}", same)] if same else []) + groups
        if reason in ("outlier", "label_has_multiple_identities") and same:
            return [(f"label {rec['label']}", same)]
        return []

    def card(self, reason: str, row: int, rec: dict[str, Any], error: str | None) -> str:
        parts = [self.figure(row, rec["uri"].rsplit("/", 1)[-1])]
        for title, rows in self.evidence_rows(reason, row, rec):
            if rows:
                parts.append(self.group(title, rows))
        meta = [f'<span class="act {_e(rec["action"])}">{_e(rec["action"])}</span>']
        if rec["label"] is not None:
            meta.append(f"label: {_e(rec['label'])}")
        if rec["suggested_label"]:
            meta.append(f"suggested: {_e(rec['suggested_label'])}")
        score = self.d.reason_scores[row].get(reason)
        if score is not None:
            meta.append(f"score: {score:.3f}")
        if reason == "decode_error" and error:
            meta.append(f'<span class="muted">{_e(error)}</span>')
        return (
            f'<div class="card"><div class="row">{"".join(parts)}</div>'
            f"<div>{' &middot; '.join(meta)}</div></div>"
        )


def _table(title: str, counts: dict[str, int]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{_e(title)}</th><th>images</th></tr>{rows}</table>"


def _changes(page: _Page, changes: pa.Table, counts: dict[str, int], limit: int) -> list[str]:
    """The "since the last run" section: counts, then the first changed files with old and new
    verdicts (removed files have no thumbnail: they are gone)."""
    if changes.num_rows == 0:
        return ["<h2 id=changes>Since the last run</h2><p>Nothing changed.</p>"]
    head = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    rows = []
    for rec in changes.slice(0, limit).to_pylist():
        row = page.row_of.get(rec["image_id"])
        fig = page.figure(row) if row is not None else ""
        old = " ".join(rec["old_reasons"] or []) or "-"
        new = " ".join(rec["new_reasons"] or []) or "-"
        rows.append(
            f"<tr><td>{_e(rec['change'])}</td><td>{fig}</td><td>{_e(rec['uri'])}</td>"
            f"<td>{_e(rec['label'])}</td><td>{_e(rec['old_action'] or '-')} ({_e(old)})</td>"
            f"<td>{_e(rec['new_action'] or '-')} ({_e(new)})</td></tr>"
        )
    more = (
        f"<p class=muted>showing {limit} of {changes.num_rows}; all are in "
        "report/changes.parquet</p>"
        if changes.num_rows > limit
        else ""
    )
    return [
        "<h2 id=changes>Since the last run</h2>",
        f"<table><tr><th>change</th><th>files</th></tr>{head}</table>",
        "<table><tr><th>change</th><th></th><th>file</th><th>label</th><th>before</th>"
        f"<th>now</th></tr>{''.join(rows)}</table>{more}",
    ]


def render_report(
    inp: CleanInputs,
    decision: Decision,
    summary: dict[str, Any],
    config: Config,
    changes: pa.Table,
) -> str:
    page = _Page(inp, decision, config)
    recs = decision.actions.to_pylist()
    errors = inp.images.column("error").to_pylist()
    limit = config.clean.report_rows
    by_reason: dict[str, list[int]] = {r: [] for r in REASONS}
    for row, rec in enumerate(recs):
        for reason in rec["reasons"]:
            by_reason[reason].append(row)
    for rows in by_reason.values():  # strongest evidence first
        rows.sort(key=lambda r: (-(recs[r]["score"] or 0.0), recs[r]["uri"]))
    needed: set[int] = set()
    for reason, rows in by_reason.items():
        for row in rows[:limit]:
            needed.add(row)
            for _, ev in page.evidence_rows(reason, row, recs[row]):
                needed.update(ev)
    for image_id in changes.column("image_id").slice(0, limit).to_pylist():
        if image_id in page.row_of:
            needed.add(page.row_of[image_id])
    page.load_thumbs(needed)
    out_root = summary.get("output", "OUT")
    body = [
        f"<h1>facesieve cleaning report</h1><p class=muted>{_e(out_root)} &middot; "
        f"{summary['images']} images &middot; {_e(summary['mode'])} mode</p>",
        '<div class="row">',
        _table("action", summary["actions"]),
        _table("reason", summary["reasons"]),
        "</div>",
        "<h2>How to apply</h2><p>The full list is <code>report/actions.parquet</code> "
        "(and <code>actions.csv</code>), one row per input image. For a folder-per-label "
        "dataset, for example:</p>",
        f"<pre>{_e(APPLY.format(out=out_root))}</pre>",
        *_changes(page, changes, summary["changes"], limit),
    ]
    for reason, rows in by_reason.items():
        if not rows:
            continue
        shown = rows[:limit]
        more = (
            f" (showing {len(shown)} with the strongest evidence; all are in actions.parquet)"
            if len(rows) > len(shown)
            else ""
        )
        body.append(
            f'<h2 id="{reason}">{_e(reason)}: {len(rows)}</h2>'
            f"<p>{_e(DESCRIPTIONS[reason])}{_e(more)}</p><div class=cards>"
        )
        body += [page.card(reason, r, recs[r], errors[r]) for r in shown]
        body.append("</div>")
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        f"<title>facesieve report</title><style>{CSS}</style><script>{SCRIPT}</script>"
        f"</head><body>{''.join(body)}</body></html>"
    )
