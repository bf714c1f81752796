"""`syncd check`: validate the configuration, then check each remote and the local set-up without writing
anything anywhere, and report a checklist (`model.Report`): one line per check, ok / FAIL / warn / skip, and
for each failure the fix in one sentence.

The checks, in the checklist's order: the configuration; the Entra token and the app roles in it, each
configured group (exists, name, member count), User.Read.All, the Teams permission (when `teams` is a phone
source) and a delta query (`graph_checks`); SmartCommunicator sign-in, the customer ID and the agents list
(`smartcomm_checks`); the database and the admin listener (`local_checks`). The three groups run side by
side; a check whose prerequisite failed is skipped, saying which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from syncd.config.loader import CONFIG_ENV, ENV_PREFIX, ConfigError, load_settings
from syncd.config.settings import Settings
from syncd.service.check.fixes import config_fix
from syncd.service.check.graph_checks import graph_checks, groups_to_check
from syncd.service.check.local_checks import admin_checks, database_checks
from syncd.service.check.model import Check, Report, Status, fail, ok, skip
from syncd.service.check.smartcomm_checks import smartcomm_checks

__all__ = ["Check", "Report", "Status", "check_configuration", "groups_to_check", "run_checks"]

_CONFIG = ("config", "configuration")

_GRAPH_SECTION_FIX = (
    "add a [graph] section (tenant_id, client_id, client_secret_file or certificate_path, group_ids) to the "
    "config file, or set SYNCD_GRAPH__* variables"
)
_SMARTCOMM_SECTION_FIX = (
    "add a [smartcomm] section (customer_id, username, password_file) to the config file, or set "
    "SYNCD_SMARTCOMM__* variables"
)


def check_configuration(
    config_file: Path | None,
    env: Mapping[str, str],
    *,
    before_checks: Callable[[Settings], None] | None = None,
) -> Report:
    """Load the configuration as every command does and, when it is valid, call `before_checks` with it (the
    command line sets up logging there) and run every check."""
    shown = str(config_file) if config_file is not None else None
    try:
        settings = load_settings(config_file, env)
    except ConfigError as exc:
        checks = [
            fail(*_CONFIG, f"{key}: {message}" if key else message, config_fix(key), key=key)
            for key, message in exc.problems
        ]
        return Report(checks, config_file=shown)
    variables = sum(1 for name in env if name.startswith(ENV_PREFIX) and name != CONFIG_ENV)
    where = f"{shown} and {variables} SYNCD_ variables" if shown else f"{variables} SYNCD_ variables"
    if before_checks is not None:
        before_checks(settings)
    return asyncio.run(run_checks(settings, config_file=shown, where=where))


async def run_checks(settings: Settings, *, config_file: str | None = None, where: str = "") -> Report:
    """Every check of valid settings (the first line says they are valid: `where` they came from)."""
    checks = [ok(*_CONFIG, f"valid ({where})" if where else "valid")]
    graph, smartcomm = settings.graph, settings.smartcomm
    if graph is None:
        checks.append(fail(*_CONFIG, "missing section [graph]", _GRAPH_SECTION_FIX, key="graph"))
    if smartcomm is None:
        checks.append(fail(*_CONFIG, "missing section [smartcomm]", _SMARTCOMM_SECTION_FIX, key="smartcomm"))

    async def graph_part() -> list[Check]:
        if graph is None:
            return [skip("entra_token", "Entra token", "needs a [graph] section")]
        return await graph_checks(graph)

    async def smartcomm_part() -> list[Check]:
        if smartcomm is None:
            return [skip("smartcomm_auth", "SmartCommunicator sign-in", "needs a [smartcomm] section")]
        return await smartcomm_checks(smartcomm, tenant_id=graph.tenant_id if graph is not None else None)

    def local_part() -> list[Check]:
        return database_checks(settings.database.url) + admin_checks(settings.admin)

    remote_graph, remote_smartcomm, local = await asyncio.gather(
        graph_part(), smartcomm_part(), asyncio.to_thread(local_part)
    )
    return Report([*checks, *remote_graph, *remote_smartcomm, *local], config_file=config_file)
