"""Suite-wide strictness: a clean environment and no asyncio task left running after a test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's syncd settings or CA overrides."""
    for name in list(os.environ):
        if name.startswith("SYNCD_") or name in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}:
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fails a test that leaves a task running on its event loop (a forgotten request, a stray timer)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)  # let cancelled tasks finish unwinding
    current = asyncio.current_task()
    leaked = [task for task in asyncio.all_tasks() - before if not task.done() and task is not current]
    assert not leaked, f"tasks left running: {leaked}"
