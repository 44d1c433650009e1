"""``OUT/report/index.html``: the shell of the review page (totals, how to apply, changes).

The page itself is static files, no server (see ``facesieve.report.site`` for the layout and
why): this module writes the part that is the same whatever the reviewer does -- the totals, the
``facesieve apply`` command, what changed since the last report -- and the empty review panel
that ``review.js`` fills from ``data/index.js``. Every string from the data goes through
``html.escape`` here and through ``textContent`` in the script.
"""

from __future__ import annotations

import html
from typing import Any

import pyarrow as pa

CHANGES_SHOWN = 60  # changed files listed on the page; all are in changes.parquet

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


def _table(title: str, counts: dict[str, int]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{_e(title)}</th><th>images</th></tr>{rows}</table>"


def apply_command(out_root: str) -> str:
    """The command that carries out the report and the reviewer's decisions."""
    return f"facesieve apply {out_root} --to DEST --decisions decisions.json"


def _changes(changes: pa.Table, counts: dict[str, int]) -> str:
    """The "since the last run" section: counts, then the first changed files with old and new
    verdicts."""
    if changes.num_rows == 0:
        return "<h2 id=changes>Since the last run</h2><p>Nothing changed.</p>"
    head = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    rows = []
    for rec in changes.slice(0, CHANGES_SHOWN).to_pylist():
        old = " ".join(rec["old_reasons"] or []) or "-"
        new = " ".join(rec["new_reasons"] or []) or "-"
        rows.append(
            f"<tr><td>{_e(rec['change'])}</td><td>{_e(rec['uri'])}</td>"
            f"<td>{_e(rec['label'])}</td><td>{_e(rec['old_action'] or '-')} ({_e(old)})</td>"
            f"<td>{_e(rec['new_action'] or '-')} ({_e(new)})</td></tr>"
        )
    more = (
        f"<p class=muted>showing {CHANGES_SHOWN} of {changes.num_rows}; all are in "
        "report/changes.parquet</p>"
        if changes.num_rows > CHANGES_SHOWN
        else ""
    )
    return (
        "<details><summary><h2 id=changes>Since the last run</h2></summary>"
        f"<table><tr><th>change</th><th>files</th></tr>{head}</table>"
        "<table><tr><th>change</th><th>file</th><th>label</th><th>before</th>"
        f"<th>now</th></tr>{''.join(rows)}</table>{more}</details>"
    )


def render_index(summary: dict[str, Any], changes: pa.Table, report_id: str) -> str:
    """The page's HTML; ``report_id`` versions every file it loads (no stale browser cache)."""
    out_root = summary.get("output", "OUT")
    v = _e(report_id)
    body = [
        f"<header><h1>facesieve cleaning report</h1><p class=muted>{_e(out_root)} &middot; "
        f"{summary['images']} images &middot; {_e(summary['mode'])} mode &middot; report "
        f"<code id=report-id>{v}</code></p>",
        '<div class="row">',
        _table("action", summary["actions"]),
        _table("reason", summary["reasons"]),
        "</div>",
        "<h2>How to apply</h2><p>Review the flagged images below: accept, reject or relabel "
        "each (your decisions stay in this browser), then <b>Export decisions</b> and run:</p>",
        f"<pre id=apply>{_e(apply_command(out_root))}</pre>",
        "<p class=muted>Without <code>--decisions</code> the report's actions are applied as "
        "they are; <code>--dry-run</code> lists what would change, <code>--quarantine DIR</code> "
        "moves dropped files there. The full list is <code>report/actions.parquet</code> "
        "(and <code>actions.csv</code>), one row per input image.</p>",
        _changes(changes, summary["changes"]),
        "</header><main id=review><p id=loading>Loading the review page&hellip; (it needs "
        "JavaScript and the files next to index.html: data/, thumbs/, review.js)</p></main>",
    ]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        "<link rel=icon href='data:,'>"  # no favicon request (a 404 on static hosts)
        f"<title>facesieve report</title><link rel=stylesheet href='review.css?v={v}'>"
        f"</head><body>{''.join(body)}"
        f"<script src='review.js?v={v}'></script><script src='data/index.js?v={v}'></script>"
        "</body></html>"
    )
