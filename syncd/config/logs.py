"""structlog set-up for syncd (JSON in a container, console on a terminal), with secret redaction.

Redaction (`syncd.core.redact`) is a processor in the chain, so it applies to every event whoever logs it:
values under secret-looking keys are replaced, and anything that looks like a JWT or a bearer credential
inside any string value is masked, so a token that slips into an error message still never reaches the
output.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from syncd.core.redact import REDACTED, redact_secrets, redact_text

__all__ = ["REDACTED", "configure_logging", "debug_enabled", "redact_secrets", "redact_text"]

_debug = False


def debug_enabled() -> bool:
    """Whether debug events are logged: hot paths (one event per request) check it first, since building
    an event for a disabled level still costs a logger bind per call."""
    return _debug


def configure_logging(*, level: str = "info", json: bool | None = None, stream: TextIO | None = None) -> None:
    """Route structlog events to `stream` (stderr by default), as JSON lines or for a human console.

    `json=None` picks console output when the stream is a terminal and JSON otherwise (a container).
    """
    global _debug
    _debug = logging.getLevelName(level.upper()) <= logging.DEBUG
    out = stream if stream is not None else sys.stderr
    as_json = not out.isatty() if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
