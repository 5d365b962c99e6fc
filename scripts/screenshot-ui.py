"""Screenshot of the reviewer page with a queue loaded and the first case open, for the docs.

    .venv/bin/python scripts/screenshot-ui.py [--url http://127.0.0.1:3000] [--out docs/reviewer-page.png]

Run it after `make demo` (the service must be serving /ui with cases in the queue). Drives Debian's Chromium
(`scripts/install-browser.sh`) with Playwright; no browser is downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def screenshot(url: str, out: Path, reviewer: str = "demo-reviewer", open_first: bool = True) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=url.rstrip("/"))
            context.add_init_script(f"localStorage.setItem('triage.reviewer_id', {reviewer!r})")
            page = context.new_page()
            page.goto("/ui/")
            page.wait_for_selector("#queue-body tr", timeout=30_000)
            if open_first:
                page.locator("#queue-body tr").first.locator("button.open-case").click()
                page.wait_for_selector("#case-panel:not([hidden]) #case-reasons li", timeout=30_000)
                page.locator("#queue-body tr").first.focus()
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "reviewer-page.png")
    parser.add_argument("--reviewer", default="demo-reviewer")
    parser.add_argument("--queue-only", action="store_true", help="do not open the first case")
    args = parser.parse_args()
    print(screenshot(args.url, args.out, args.reviewer, open_first=not args.queue_only))


if __name__ == "__main__":
    main()
