"""Suite-wide strictness: a clean environment and no asyncio task left running after a test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis times every example (200 ms by default) and the generation of data, and fails a test that is
# slow: timed assertions, which a loaded machine fails for no fault of the code. Off for the whole suite;
# the tests' timeout still catches a hang. (A test's own @settings that lists suppressed health checks
# replaces this list: those add too_slow themselves.)
settings.register_profile("syncd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("syncd")


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


# The tiers whose files take longest run first. `make test` hands whole files to two workers in collection
# order; a long file handed out last (the short soak takes some 40 s) would leave the other worker idle at
# the end. Within a tier the order stays as collected (a stable sort).
SLOW_FIRST = ("tests/soak/", "tests/e2e/", "tests/browser/", "tests/container/", "tests/store/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, tier in enumerate(SLOW_FIRST) if item.nodeid.startswith(tier)), len(SLOW_FIRST))

    items.sort(key=rank)
