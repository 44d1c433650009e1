"""The review page as static files under ``OUT/report/``, and how stale ones are cleared.

Layout (docs/FORMATS.md)::

    index.html           the shell: totals, the apply command, changes, the review panel
    review.js, .css      the page's code (the same for every report)
    data/index.js        every flagged item's filter columns: id, action, reasons, labels, score
    data/chunk-N.js      page N's details: uri, error, thumbnail cells, evidence
    thumbs/sheet-N.jpg   page N's thumbnails in one sprite sheet (facesieve.report.sheets)

Why static files and no server: a report is read where it was written -- a laptop folder, a
shared drive, an S3 bucket served as a website -- by people who should not have to run
anything. Why ``<script>`` files and not JSON: Chromium refuses ``fetch()`` of ``file://``
URLs, while a script tag that calls ``facesieve.chunk(n, ...)`` loads from disk and from any
static host alike. The index (a few columns per item, ~50 bytes) is loaded up front so filters
and counts over 100k items are instant; a page's details load when it is shown. Every file is
loaded with ``?v=<report id>``, so a browser never mixes a cached chunk of an older report.

Data strings are embedded as JSON with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped: no
``</script>`` or ``<!--`` can end or bend the script, whatever a file name holds.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any

from facesieve.clean.actions import REASONS
from facesieve.report.html import DESCRIPTIONS, apply_command
from facesieve.report.review_data import Item, ReviewInputs, pages, review_items
from facesieve.report.sheets import COLS, render_sheets, sheet_rows
from facesieve.report.thumbs import THUMB
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

ASSETS = ("review.js", "review.css")
DATA, THUMBS = "report/data/", "report/thumbs/"
ACTION_CODES = ("drop", "relabel", "review", "keep")


def safe_json(value: Any) -> str:
    """JSON that is also safe inside any script: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def js_call(function: str, *args: Any) -> bytes:
    return f"facesieve.{function}({','.join(safe_json(a) for a in args)});\n".encode("ascii")


def parse_js_call(data: bytes) -> list[Any]:
    """The arguments of a ``js_call`` file (for tests and scripts that read the page's data)."""
    text = data.decode("ascii").strip()
    inner = text[text.index("(") + 1 : text.rindex(")")]
    return list(json.loads(f"[{inner}]"))


def index_doc(ri: ReviewInputs, items: list[Item], per_page: int, info: dict[str, Any]) -> dict:
    """Everything the page filters and counts on, one compact column per field."""
    cols = ri.actions.select(
        ["image_id", "label", "action", "reasons", "suggested_label", "score"]
    ).to_pydict()
    labels = sorted(
        {x for x in cols["label"] if x is not None}
        | {x for x in cols["suggested_label"] if x is not None}
    )
    code = {x: i for i, x in enumerate(labels)}
    bit = {r: 1 << i for i, r in enumerate(REASONS)}
    rows = [it.row for it in items]
    score = [cols["score"][r] for r in rows]
    return {
        **info,
        "per_page": per_page,
        "cols": COLS,
        "cell": THUMB,
        "n": len(items),
        "reasons": list(REASONS),
        "descriptions": DESCRIPTIONS,
        "actions": list(ACTION_CODES),
        "labels": labels,
        "id": [cols["image_id"][r] for r in rows],
        "a": [ACTION_CODES.index(cols["action"][r]) for r in rows],
        "r": [sum(bit[x] for x in cols["reasons"][r]) for r in rows],
        "l": [code.get(cols["label"][r], -1) for r in rows],
        "s": [code.get(cols["suggested_label"][r], -1) for r in rows],
        "sc": [None if s is None else round(s, 4) for s in score],
    }


def chunk_items(
    ri: ReviewInputs, page: list[Item], cells: dict[int, int], uris: list[str]
) -> list[dict[str, Any]]:
    out = []
    for it in page:
        rec: dict[str, Any] = {"u": uris[it.row], "t": cells[it.row]}
        error = ri.errors[it.row]
        if error:
            rec["e"] = error
        scores = ri.reason_scores[it.row] if ri.reason_scores else {}
        if scores:
            rec["rs"] = {k: round(v, 4) for k, v in scores.items()}
        if it.evidence:
            rec["g"] = [[t, [[uris[r], cells[r]] for r in rows]] for t, rows in it.evidence]
        out.append(rec)
    return out


def write_site(
    out: Store,
    ri: ReviewInputs,
    index_html: str,
    info: dict[str, Any],
    per_page: int,
    max_pixels: int,
    s3: str | None,
) -> list[str]:
    """Write every file of the review page, then delete files of an earlier report that this
    one does not have (a fresh run and a rerun leave the same files). Returns the keys."""
    items = review_items(ri)
    per_page = max(per_page, 1)
    paged = pages(items, per_page)
    uris = ri.actions.column("uri").to_pylist()
    written: list[str] = []
    info = {**info, "apply": apply_command(str(info.get("output", "OUT")))}
    doc = index_doc(ri, items, per_page, info)
    sheets = [sheet_rows(p) for p in paged]
    for n, jpeg, cells in render_sheets(sheets, uris, ri.boxes, max_pixels, s3):
        by_row = dict(zip(sheets[n], cells, strict=True))
        out.write_bytes(f"{THUMBS}sheet-{n + 1}.jpg", jpeg)
        chunk = js_call("chunk", n, chunk_items(ri, paged[n], by_row, uris))
        out.write_bytes(f"{DATA}chunk-{n + 1}.js", chunk)
        written += [f"{THUMBS}sheet-{n + 1}.jpg", f"{DATA}chunk-{n + 1}.js"]
    out.write_bytes(f"{DATA}index.js", js_call("index", doc))
    written.append(f"{DATA}index.js")
    for name in ASSETS:
        data = resources.files("facesieve.report").joinpath("assets", name).read_bytes()
        out.write_bytes(f"report/{name}", data)
        written.append(f"report/{name}")
    out.write_bytes("report/index.html", index_html.encode("utf-8"))
    written.append("report/index.html")
    keep = set(written)
    stale = [o.key for prefix in (DATA, THUMBS) for o in out.list(prefix) if o.key not in keep]
    for key in stale:
        out.delete(key)
    if stale:
        log.info("removed %d files of the previous review page", len(stale))
    return written
