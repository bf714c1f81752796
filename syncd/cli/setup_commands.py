"""The commands of the first hour with a tenant: `syncd check` (is everything set up?) and `syncd config show`
/ `syncd config schema` (what is configured, and what may be).

Imported by `syncd.cli.main` only for these commands; `check` loads the Graph and HTTP stack, `config` does
not.
"""

from __future__ import annotations

import json
import os
import sys

from syncd.config.loader import ConfigError, config_path, load_settings_with_sources
from syncd.config.logs import configure_logging
from syncd.config.settings import Settings
from syncd.core.exits import EXIT_CONFIG


def run_check(config: str | None, *, as_json: bool) -> int:
    """`syncd check [--json]`: the checklist; 0 when every check passed, 2 when one failed."""
    from syncd.service.check import check_configuration

    def quiet_logs(settings: Settings) -> None:
        # The checklist says what matters; logs (to stderr) only for warnings, or everything at debug.
        level = "warning" if settings.log.level == "info" else settings.log.level
        configure_logging(
            level=level, json=None if settings.log.format == "auto" else settings.log.format == "json"
        )

    report = check_configuration(config_path(config, os.environ), os.environ, before_checks=quiet_logs)
    if as_json:
        print(json.dumps(report.to_json(), sort_keys=True))
    else:
        sys.stdout.write(report.render_text())
    return report.exit_code


def run_config(config: str | None, action: str, *, as_json: bool) -> int:
    """`syncd config show [--json]` and `syncd config schema`."""
    if action == "schema":
        from syncd.config.schema import schema_text

        sys.stdout.write(schema_text())
        return 0
    from syncd.config.show import render_text, to_json

    path = config_path(config, os.environ)
    try:
        settings, sources = load_settings_with_sources(path, os.environ)
    except ConfigError as exc:
        print(f"syncd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if as_json:
        print(to_json(settings, sources, path))
    else:
        sys.stdout.write(render_text(settings, sources, path))
    return 0
