"""syncd's Alembic environment, shipped as a package so an installed syncd can upgrade its own database.

There is no alembic.ini: `alembic_config()` builds the configuration in code, pointing Alembic at this
package's directory wherever it is installed. `Store.upgrade()` passes its open connection through
`config.attributes["connection"]`; `main()` is Alembic's command line on the same configuration, for
developers (`python -c 'import migrations; migrations.main()' revision --autogenerate -m "..."`, with the
database given as `-x url=...` or `SYNCD_DATABASE__URL`).
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path

from alembic.config import CommandLine, Config
from sqlalchemy import Connection

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""This package's directory: env.py, script.py.mako and versions/."""


def alembic_config(
    url: str | None = None,
    *,
    connection: Connection | None = None,
    cmd_opts: Namespace | None = None,
) -> Config:
    """An Alembic configuration for this environment, built in code.

    `connection`, when given, is the connection env.py migrates (inside the caller's transaction);
    otherwise env.py opens one to `url` (or `-x url=...`, or `SYNCD_DATABASE__URL`).
    """
    config = Config(cmd_opts=cmd_opts)
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Without it Alembic warns (DeprecationWarning) about legacy path splitting.
    config.set_main_option("path_separator", "os")
    if url is not None:
        # The configuration is a ConfigParser: a literal "%" (URL-encoded passwords) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def main(argv: Sequence[str] | None = None) -> None:
    """Alembic's command line (upgrade, current, history, revision --autogenerate, ...) without an ini."""
    cli = CommandLine(prog="python -c 'import migrations; migrations.main()'")
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("too few arguments")
    cli.run_cmd(alembic_config(cmd_opts=options), options)
