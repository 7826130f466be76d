"""A real browser for the admin pages: Debian's headless Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TGTRUNK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator:
    """A fresh headless Chromium (own --user-data-dir) at a phone-sized window; closed with all its processes."""
    from playwright.async_api import async_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium chromium-driver` (make install does it)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 390, "height": 844})  # a phone screen
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            await context.close()
