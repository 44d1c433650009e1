"""What the review page costs at scale: generation, bytes on disk, and the browser's side.

Builds a synthetic review of N flagged images (``facesieve.devtools.review_fixture``: made-up
actions, real LFW-sized picture tiles, one file per image) and writes the page with the real
code (``facesieve.report.site.write_site``), then opens it from ``file://`` in headless
Debian Chromium (Playwright) and measures the time to the first drawn page, to a page far in
(page 500, or the last one), to a filter over every item, and the JS heap.

    python bench/review_page.py [--n 100000] [--per-page 60] [--work DIR] [--threads 0]

Prints one JSON object on stdout (docs/BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from facesieve.devtools.review_fixture import synthetic_page, synthetic_review
from facesieve.report.site import write_site
from facesieve.storage import LocalStore

log = logging.getLogger("bench.review_page")


def _cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def build(n: int, work: Path, per_page: int) -> dict[str, Any]:
    t = time.perf_counter()
    ri = synthetic_review(n, work / "in")
    fixture_s = time.perf_counter() - t
    out = LocalStore(str(work / "out"))
    page, info = synthetic_page(ri, work / "out", "bench")
    t, cpu = time.perf_counter(), _cpu()
    keys = write_site(out, ri, page, info, per_page, 10**8, None)
    gen_s, gen_cpu = time.perf_counter() - t, _cpu() - cpu
    report = work / "out" / "report"
    sizes = {p: p.stat().st_size for p in report.rglob("*") if p.is_file()}
    thumbs = sum(s for p, s in sizes.items() if p.parent.name == "thumbs")
    return {
        "flagged": n,
        "images": ri.actions.num_rows,
        "fixture_s": round(fixture_s, 1),
        "generation_s": round(gen_s, 1),
        "generation_s_per_1000": round(gen_s / (n / 1000), 2),
        "generation_cpu_s_per_1000": round(gen_cpu / (n / 1000), 2),  # user + system, all threads
        "load_average_1min": round(os.getloadavg()[0], 1),
        "files": len(keys),
        "bytes": sum(sizes.values()),
        "bytes_thumbs": thumbs,
        "bytes_index_js": (report / "data" / "index.js").stat().st_size,
        "bytes_per_flagged": round(sum(sizes.values()) / n),
    }


def browse(index: Path, n: int, per_page: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        t = time.perf_counter()
        page.goto(index.as_uri())
        page.wait_for_function("+(document.body.dataset.rendered || 0) > 0", timeout=120000)
        first_s = time.perf_counter() - t
        far = min(500, -(-n // per_page))
        done = int(page.evaluate("+document.body.dataset.rendered"))
        t = time.perf_counter()
        page.fill("#page-go", str(far))
        page.press("#page-go", "Enter")
        page.wait_for_function(f"+document.body.dataset.rendered > {done}", timeout=60000)
        far_s = time.perf_counter() - t
        done += 1
        t = time.perf_counter()
        page.select_option("#f-reason", "mislabeled")
        page.wait_for_function(f"+document.body.dataset.rendered > {done}", timeout=60000)
        filter_s = time.perf_counter() - t
        cdp = page.context.new_cdp_session(page)
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        browser.close()
    return {
        "first_render_s": round(first_s, 2),
        "far_page": far,
        "to_far_page_s": round(far_s, 2),
        "filter_s": round(filter_s, 2),
        "js_heap_used_mb": round(metrics["JSHeapUsedSize"] / 2**20, 1),
        "js_heap_total_mb": round(metrics["JSHeapTotalSize"] / 2**20, 1),
        "errors": errors,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="flagged images (default 100000)")
    ap.add_argument("--per-page", type=int, default=60, help="items per page (clean.report_rows)")
    ap.add_argument("--work", type=Path, help="folder for inputs and the page (default: temp)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="review-bench-"))
    shutil.rmtree(work / "out", ignore_errors=True)
    result = {"cpus": os.cpu_count(), **build(args.n, work, args.per_page)}
    result.update(browse(work / "out" / "report" / "index.html", args.n, args.per_page))
    result["work"] = str(work)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
