"""Browser fixtures: the end-to-end world (both emulators over HTTPS) and headless Debian Chromium.

The browser is Debian's `chromium` driven through Debian's `chromium-driver` with Selenium; both paths are
given, so Selenium Manager never looks for (or downloads) a browser. `make test` installs the packages
(`make browser`); a machine without them FAILS these tests with that instruction, never skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from tests.e2e.conftest import (  # noqa: F401  (fixtures shared with tests/e2e)
    backend,
    daemons,
    e2e_ca,
    postgres_database_url,
    servers,
    world,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
"""Screenshots the tests leave for a person to look at (kept out of git)."""


def missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} missing: the browser tests need Debian's chromium and chromium-driver. "
        "Run `make browser` as root (apt-get install -y --no-install-recommends chromium chromium-driver); "
        "`make test` does it for you."
    )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium at laptop size, with a fresh profile."""
    reason = missing_browser()
    if reason is not None:
        pytest.fail(reason)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # This machine reaches no outside host: keep Chromium from trying (and stalling on) any.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
