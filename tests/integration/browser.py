"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, for page tests.

Skips when either is missing: CI installs chromium with apt (.ci/run) and playwright from the
dev extra; the browser Playwright would download is never used.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


class Watched:
    """A page with every script error, console error and request recorded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def names(self, prefix: str) -> set[str]:
        """File names (without query) of requests whose name starts with ``prefix``."""
        files = {u.split("?")[0].rsplit("/", 1)[-1] for u in self.requests}
        return {f for f in files if f.startswith(prefix)}

    def rendered(self, count: int = 0) -> int:
        """Wait until the page has drawn more than ``count`` times; the new render number."""
        self.page.wait_for_function(
            f"+(document.body.dataset.rendered || 0) > {count}", timeout=20000
        )
        return int(self.page.evaluate("+document.body.dataset.rendered"))
