"""Secret redaction (pure): masks JWTs, bearer credentials and values under secret-looking keys.

The log processor chain (`syncd.config.logs`) and the notification texts use it, so a token that slips into
an error message never reaches a log line or a webhook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

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
