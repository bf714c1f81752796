"""structlog set-up for syncd (JSON in a container, console on a terminal) and secret redaction.

Redaction is a processor in the chain, so it applies to every event whoever logs it: values under
secret-looking keys are replaced, and anything that looks like a JWT or a bearer credential inside any
string value is masked, so a token that slips into an error message still never reaches the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|authorization|jwt|credential|private_key|passphrase|api_key|cookie)",
    re.IGNORECASE,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact_text(text: str) -> str:
    """Pure: `text` with JWTs and bearer credentials masked."""
    return _BEARER.sub(r"\1 " + REDACTED, _JWT.sub(REDACTED, text))


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: masks secrets in every key and value of the event (pure on its input)."""
    return {key: _redact_value(key, value) for key, value in event_dict.items()}


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
