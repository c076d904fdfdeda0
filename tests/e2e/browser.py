"""Pages as a person uses them: Debian's Chromium driven by Playwright (no browser download), axe-core
from npm for accessibility, screenshots kept under `.local/artifacts/screenshots` for a person to look at."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest
from playwright.async_api import Browser, Page, async_playwright

ROOT: Final = Path(__file__).resolve().parents[2]
CHROMIUM: Final = Path("/usr/bin/chromium")
AXE: Final = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS: Final = ROOT / ".local" / "artifacts" / "screenshots"
# JIS X 8341-3:2016 is WCAG 2.0; level AA as far as a tool can check, and WCAG 2.1's additions besides.
AXE_TAGS: Final = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "Debian's Chromium is missing: make install (apt-get install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1024, "height": 800}, locale="ja-JP")
    page = await context.new_page()
    page.set_default_timeout(10_000)
    yield page
    await context.close()


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations of the page as it stands (evaluated through the debugger protocol, so the
    page's Content-Security-Policy, which allows no inline script, stays as it is)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", AXE_TAGS
    )
    return [
        {"id": item["id"], "impact": item["impact"], "nodes": [node["target"] for node in item["nodes"]]}
        for item in result["violations"]
    ]


async def check_page(page: Page, name: str) -> None:
    """A screenshot of the whole page, then axe-core: 0 violations."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png", full_page=True)
    violations = await axe_violations(page)
    assert violations == [], f"axe-core on {name} ({page.url}): {violations}"
