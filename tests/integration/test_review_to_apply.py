"""From a real report to a cleaned dataset through a person's clicks.

The demo data runs through the whole pipeline; in headless Chromium a reviewer rejects a drop,
relabels a kept-for-review image and drops an image the report keeps, exports the decisions, and
``facesieve apply --decisions`` writes a tree that differs from the report's in exactly those
three images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from facesieve.cli.main import main
from facesieve.report.review_data import flagged_rows
from facesieve.runner.pipeline import run_pipeline
from tests.integration.browser import Watched, browser  # noqa: F401
from tests.integration.helpers import local_config

pytestmark = pytest.mark.integration


def _tree(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("_facesieve.")
    }


def test_exported_decisions_change_what_apply_writes(
    browser: Any,  # noqa: F811
    demo_data: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    assert run_pipeline(str(demo_data), str(out), local_config()).exit_code == 0
    table = pq.read_table(out / "report" / "actions.parquet")
    order = [table.column("image_id")[int(r)].as_py() for r in flagged_rows(table)]
    actions = table.to_pylist()
    rel = {r["image_id"]: str(Path(r["uri"]).relative_to(demo_data)) for r in actions}
    dropped = next(r for r in actions if r["action"] == "drop" and "near_duplicate" in r["reasons"])
    flagged_keep = next(r for r in actions if r["action"] == "keep" and r["reasons"])

    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    w = Watched(context.new_page())
    w.page.goto((out / "report" / "index.html").as_uri())
    w.rendered()

    def card(image_id: str) -> str:
        """Go to the page that shows ``image_id`` and return its card's selector."""
        k = order.index(image_id)  # the page lists flagged images in this order
        w.page.fill("#page-go", str(k // local_config().clean.report_rows + 1))
        w.page.press("#page-go", "Enter")
        selector = f'.card[data-id="{image_id}"]'
        w.page.wait_for_selector(selector, timeout=20000)
        return selector

    w.page.click(card(dropped["image_id"]) + ' button[data-do="reject"]')
    sel = card(flagged_keep["image_id"])
    w.page.fill(sel + " input", "Reviewed_Person")
    w.page.click(sel + ' button[data-do="relabel"]')
    with w.page.expect_download() as download:
        w.page.click("#export")
    decisions = tmp_path / "decisions.json"
    download.value.save_as(decisions)
    assert w.errors == []
    context.close()

    plain, decided = tmp_path / "plain", tmp_path / "decided"
    assert main(["apply", str(out), "--to", str(plain), "-q"]) == 0
    assert main(["apply", str(out), "--to", str(decided), "--decisions", str(decisions), "-q"]) == 0
    moved = f"Reviewed_Person/{Path(rel[flagged_keep['image_id']]).name}"
    assert rel[dropped["image_id"]] not in _tree(plain)
    assert rel[flagged_keep["image_id"]] in _tree(plain)
    assert _tree(decided) == (_tree(plain) | {rel[dropped["image_id"]], moved}) - {
        rel[flagged_keep["image_id"]]
    }
    chosen = {
        r["image_id"]: r["chosen_by"]
        for r in pq.read_table(decided / "_facesieve.manifest.parquet").to_pylist()
    }
    assert (
        chosen[dropped["image_id"]]
        == chosen[flagged_keep["image_id"]]
        != chosen[
            next(i for i in chosen if i not in (dropped["image_id"], flagged_keep["image_id"]))
        ]
    )
