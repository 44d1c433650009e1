"""Sprite sheets: the thumbnails of one review page in one JPEG (``report/thumbs/sheet-N.jpg``).

Why sheets and not one file per thumbnail: a page of 60 items shows up to a few hundred faces
(each item beside its evidence); one sheet per page is one request instead of hundreds, and 100k
flagged images make ~1,700 files instead of ~300,000, which matters on S3 (one PUT each, and a
listing to clear stale ones). The price: an evidence face shown on several pages (a label's
example faces) is stored once per page. The page shows a cell with CSS ``background-position``;
the browser fetches a sheet only when an item of it is on screen (``review.js``).

Sheets are made in parallel threads, one page per task: reading, decoding (Pillow releases the
GIL while decoding and resizing) and JPEG encoding overlap. Progress goes to
``facesieve.progress`` every few seconds.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
from PIL import Image

from facesieve.clean.fetch import fetch_bytes
from facesieve.report.review_data import Item
from facesieve.report.thumbs import THUMB, face_thumb

log = logging.getLogger(__name__)
progress = logging.getLogger("facesieve.progress")

COLS = 10  # cells per sheet row
BACKGROUND = (204, 204, 204)
QUALITY = 75
PROGRESS_S = 5.0


def sheet_rows(page: list[Item]) -> list[int]:
    """The image rows a page shows, each once: every item, then its evidence."""
    seen: dict[int, None] = {}
    for item in page:
        seen.setdefault(item.row, None)
    for item in page:
        for _, rows in item.evidence:
            for r in rows:
                seen.setdefault(r, None)
    return list(seen)


def render_sheet(
    rows: list[int], uris: list[str], boxes: np.ndarray, max_pixels: int, s3: str | None
) -> tuple[bytes, list[int]]:
    """JPEG bytes of one sheet, and each row's cell (-1: no thumbnail, the image is unreadable)."""
    data = fetch_bytes([uris[r] for r in rows], s3, threads=4)
    height = max(1, -(-len(rows) // COLS)) * THUMB
    sheet = Image.new("RGB", (COLS * THUMB, height), BACKGROUND)
    cells: list[int] = []
    for r in rows:
        box = boxes[r]
        thumb = face_thumb(data.get(uris[r]), None if np.isnan(box).any() else box, max_pixels)
        if thumb is None:
            cells.append(-1)
            continue
        n = len(cells)
        x, y = (n % COLS) * THUMB, (n // COLS) * THUMB
        sheet.paste(thumb, (x + (THUMB - thumb.width) // 2, y + (THUMB - thumb.height) // 2))
        cells.append(n)
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue(), cells


def render_sheets(
    pages: list[list[int]],
    uris: list[str],
    boxes: np.ndarray,
    max_pixels: int,
    s3: str | None,
    threads: int = 0,
) -> Iterator[tuple[int, bytes, list[int]]]:
    """(page number, sheet bytes, cells) for every page, in completion order."""
    threads = threads or min(16, (os.cpu_count() or 2) * 2)
    total = sum(len(p) for p in pages)
    started = last = time.perf_counter()
    done_pages = done_images = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="sheet") as pool:
        jobs = {
            pool.submit(render_sheet, rows, uris, boxes, max_pixels, s3): n
            for n, rows in enumerate(pages)
        }
        for job in as_completed(jobs):
            n = jobs[job]
            data, cells = job.result()
            done_pages += 1
            done_images += len(pages[n])
            now = time.perf_counter()
            if now - last >= PROGRESS_S:
                last = now
                rate = done_images / (now - started)
                progress.info(
                    "report thumbnails: %d/%d sheets, %d/%d thumbnails, %.0f thumbnails/s",
                    done_pages, len(pages), done_images, total, rate,
                )  # fmt: skip
            yield n, data, cells
    took = time.perf_counter() - started
    log.debug("%d sheets, %d thumbnails in %.1f s", len(pages), total, took)
