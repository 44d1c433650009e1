"""The review page in real headless Chromium: 10,000+ flagged items rendered by the real code.

Paging, filters, reason navigation, lazily requested thumbnails, decisions (accept, reject,
relabel, review keep/drop), export in the decisions format ``apply`` reads, import, reload from
localStorage, and hostile labels and file names shown as text.
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from facesieve.apply.decisions import parse_decisions
from facesieve.devtools.review_fixture import (
    HOSTILE_LABELS,
    HOSTILE_NAMES,
    synthetic_page,
    synthetic_review,
)
from facesieve.report.review_data import flagged_rows
from facesieve.report.site import write_site
from facesieve.storage import LocalStore
from tests.integration.browser import Watched, browser  # noqa: F401

N = 10_000
PER_PAGE = 60
REPORT = "0123456789abcdef"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("review")
    ri = synthetic_review(N, root / "in")
    out = LocalStore(str(root / "out"))
    page, info = synthetic_page(ri, root / "out", REPORT)
    write_site(out, ri, page, info, PER_PAGE, 10**8, None)
    return root / "out" / "report" / "index.html", ri


@pytest.fixture
def page(browser: Any, site: tuple[Path, Any]) -> Any:  # noqa: F811
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    w = Watched(context.new_page())
    w.page.goto(site[0].as_uri())
    w.rendered()
    yield w
    assert w.errors == []
    assert w.page.evaluate("window.__pwned") is None
    context.close()


def _rows(ri: Any) -> list[dict]:
    """The flagged rows in page order."""
    recs = ri.actions.to_pylist()
    return [recs[r] for r in flagged_rows(ri.actions)]


def _count(w: Watched) -> int:
    return int(w.page.evaluate("+document.body.dataset.shown"))


def _keys(w: Watched) -> list[int]:
    return [int(k) for k in w.page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.k)")]


def test_paging_filters_navigation_and_lazy_thumbnails(page: Watched, site: tuple) -> None:
    w, rows = page, _rows(site[1])
    assert len(rows) == N and _count(w) == N
    assert w.page.inner_text("#count") == f"{N} of {N} items"
    assert _keys(w) == list(range(PER_PAGE))
    w.page.wait_for_function("window.facesieve.sheetsRequested.length > 0")
    # only the first page's chunk and sheet are asked for, and the sheet loads
    assert w.names("chunk-") == {"chunk-1.js"} and w.names("sheet-") == {"sheet-1.jpg"}
    assert w.page.evaluate("document.body.dataset.brokenImages") is None
    n = w.rendered()
    w.page.click("#next")
    n = w.rendered(n)
    assert w.page.inner_text("#pageinfo") == f"page 2 of {-(-N // PER_PAGE)}"
    assert _keys(w) == list(range(PER_PAGE, 2 * PER_PAGE))
    w.page.wait_for_function("window.facesieve.sheetsRequested.length > 1")
    assert w.names("sheet-") == {"sheet-1.jpg", "sheet-2.jpg"}
    w.page.fill("#page-go", "100")
    w.page.press("#page-go", "Enter")
    n = w.rendered(n)
    assert _keys(w)[0] == 99 * PER_PAGE
    assert w.names("chunk-") == {f"chunk-{i}.js" for i in (1, 2, 100)}
    # filters: reason, action and a score range narrow to exactly the matching rows
    w.page.select_option("#f-reason", "mislabeled")
    n = w.rendered(n)
    w.page.fill("#f-min", "0.5")
    w.page.press("#f-min", "Tab")
    n = w.rendered(n)
    w.page.wait_for_timeout(300)
    before = w.names("sheet-")
    w.page.fill("#f-max", "0.75")
    w.page.press("#f-max", "Tab")
    n = w.rendered(n)
    expect = [
        r for r in rows
        if "mislabeled" in r["reasons"] and 0.5 <= round(r["score"], 4) <= 0.75
    ]  # fmt: skip
    assert 0 < len(expect) < N and _count(w) == len(expect)
    shown = w.page.eval_on_selector_all(".card", "cs => cs.map(c => c.dataset.id)")
    assert shown == [r["image_id"] for r in expect[:PER_PAGE]]
    # the sheets asked for are those of the pages the shown items live on, no others
    pages_of = {f"sheet-{k // PER_PAGE + 1}.jpg" for k in _keys(w)}
    w.page.wait_for_timeout(300)
    assert w.names("sheet-") - before <= pages_of
    w.page.select_option("#f-action", "drop")
    n = w.rendered(n)
    assert _count(w) == 0 and w.page.inner_text("#count") == f"0 of {N} items"
    w.page.click("#f-clear")
    n = w.rendered(n)
    assert _count(w) == N
    label = rows[5]["label"]
    w.page.fill("#f-label", label)
    w.page.press("#f-label", "Tab")
    n = w.rendered(n)
    assert _count(w) == sum(r["label"] == label for r in rows)
    w.page.click("#f-clear")
    n = w.rendered(n)
    # navigation: a reason's button shows that reason's items, and its count
    outliers = [r for r in rows if "outlier" in r["reasons"]]
    w.page.click("#reasons button[data-reason=outlier]")
    n = w.rendered(n)
    assert _count(w) == len(outliers) and w.page.input_value("#f-reason") == "outlier"
    first = w.page.locator(".card").first
    assert (
        "outlier" in first.inner_text()
        and first.get_attribute("data-id") == outliers[0]["image_id"]
    )
    # an item beside its evidence: a duplicate beside the kept copy, a mislabeled face beside
    # its label's and the suggested label's faces
    w.page.click("#reasons button[data-reason=near_duplicate]")
    n = w.rendered(n)
    assert "kept copy" in w.page.locator(".card").first.inner_text()
    w.page.click("#reasons button[data-reason=mislabeled]")
    n = w.rendered(n)
    texts = w.page.eval_on_selector_all(".card", "cs => cs.map(c => c.innerText)")
    assert any("(suggested)" in t for t in texts)


def _click(w: Watched, k: int, what: str) -> None:
    w.page.click(f'.card[data-k="{k}"] button[data-do="{what}"]')


def _export(w: Watched, tmp_path: Path, name: str) -> tuple[dict, bytes]:
    with w.page.expect_download() as info:
        w.page.click("#export")
    path = tmp_path / name
    info.value.save_as(path)
    data = path.read_bytes()
    return parse_decisions(data), data


def test_decisions_export_import_and_reload(page: Watched, site: tuple, tmp_path: Path) -> None:
    w, rows = page, _rows(site[1])
    first = rows[0]
    assert first["action"] == "drop"  # near duplicates and the like come first
    _click(w, 0, "accept")
    _click(w, 1, "reject")
    w.page.fill('.card[data-k="2"] input', "person_00003")
    _click(w, 2, "relabel")
    _click(w, 3, "accept")
    _click(w, 3, "undo")  # changed their mind: no decision
    expected = {
        rows[0]["image_id"]: ("drop", None),
        rows[1]["image_id"]: ("keep", None),
        rows[2]["image_id"]: ("relabel", "person_00003"),
    }
    # a review item: keep or drop; a relabel item: accept takes the suggested label
    n = w.rendered()
    w.page.click("#reasons button[data-reason=outlier]")
    n = w.rendered(n)
    k = int(w.page.locator(".card").first.get_attribute("data-k"))
    assert w.page.locator(f'.card[data-k="{k}"] button[data-do="accept"]').count() == 0
    _click(w, k, "drop")
    expected[rows[k]["image_id"]] = ("drop", None)
    w.page.click("#reasons button[data-reason=mislabeled]")
    n = w.rendered(n)
    k = int(w.page.locator(".card").first.get_attribute("data-k"))
    _click(w, k, "accept")
    expected[rows[k]["image_id"]] = ("relabel", rows[k]["suggested_label"])
    assert w.page.get_attribute(f'.card[data-k="{k}"]', "data-decision") == "relabel"
    got, raw = _export(w, tmp_path, "decisions.json")
    assert {i: (d.action, d.label) for i, d in got.items()} == expected
    doc = json.loads(raw)
    assert doc["format"] == "facesieve-decisions" and doc["report"] == REPORT
    # reload: the decisions come back from localStorage
    w.page.reload()
    n = w.rendered()
    assert w.page.get_attribute('.card[data-k="0"]', "data-decision") == "drop"
    assert w.page.get_attribute('.card[data-k="3"]', "data-decision") == ""
    assert w.page.inner_text("#status").startswith(f"{len(expected)} decisions")
    again, _ = _export(w, tmp_path, "again.json")
    assert again == got
    # a fresh browser profile has none; importing the file restores them
    w.page.evaluate("localStorage.clear()")
    w.page.reload()
    n = w.rendered()
    assert w.page.get_attribute('.card[data-k="0"]', "data-decision") == ""
    w.page.set_input_files("#import", str(tmp_path / "decisions.json"))
    n = w.rendered(n)
    assert w.page.inner_text("#status") == f"imported {len(expected)} decisions"
    assert w.page.get_attribute('.card[data-k="2"]', "data-decision") == "relabel"
    restored, _ = _export(w, tmp_path, "restored.json")
    assert restored == got
    # bulk: accept the whole page of low-quality images
    w.page.click("#reasons button[data-reason=low_quality]")
    n = w.rendered(n)
    w.page.click("#accept-page")
    n = w.rendered(n)
    bulk, _ = _export(w, tmp_path, "bulk.json")
    low = [r["image_id"] for r in rows if "low_quality" in r["reasons"]][:PER_PAGE]
    assert set(bulk) == set(got) | set(low) and all(bulk[i].action == "drop" for i in low)


def test_hostile_labels_and_names_are_text(page: Watched, site: tuple) -> None:
    w = page
    for label in HOSTILE_LABELS:
        w.page.fill("#f-label", label)
        n = w.rendered()
        w.page.press("#f-label", "Tab")
        w.rendered(n)
        assert _count(w) >= 1
        assert label in w.page.inner_text("#cards")
    assert w.page.locator("#cards img, #cards script, #cards [onerror]").count() == 0
    w.page.click("#f-clear")
    n = w.rendered()
    rows = _rows(site[1])
    for name in HOSTILE_NAMES:
        k = next(k for k, r in enumerate(rows) if r["uri"].endswith("/" + name))
        w.page.fill("#page-go", str(k // PER_PAGE + 1))
        w.page.press("#page-go", "Enter")
        n = w.rendered(n)
        fig = w.page.locator(f'.card[data-k="{k}"] figure').first
        assert fig.get_attribute("title") == rows[k]["uri"]
        assert fig.locator("figcaption").text_content() == name
    assert w.page.locator("#cards img, #cards script, #cards [onerror]").count() == 0
    report = Path(site[0]).parent
    chunks = [f.read_text("ascii") for f in (report / "data").iterdir()]  # all escaped
    assert all("</script" not in t and "<!--" not in t and "<img" not in t for t in chunks)
    assert any("\\u003cimg src=x onerror" in t for t in chunks)


def test_served_by_a_static_web_server(browser: Any, site: tuple) -> None:  # noqa: F811
    """The same files from plain HTTP (what an S3 website or any static host does)."""
    report = Path(site[0]).parent
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(report))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        w = Watched(context.new_page())
        w.page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        n = w.rendered()
        assert _count(w) == N
        w.page.click("#next")
        w.rendered(n)
        w.page.wait_for_function("window.facesieve.sheetsRequested.length >= 2")
        w.page.wait_for_timeout(300)
        assert w.names("sheet-") == {"sheet-1.jpg", "sheet-2.jpg"}
        assert w.page.evaluate("document.body.dataset.brokenImages") is None
        assert w.errors == []
    finally:
        context.close()
        server.shutdown()
        thread.join(timeout=10)
