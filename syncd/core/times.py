"""The one way syncd writes a moment in time for people and documents (pure).

Every report says UTC: tables and the status page show "2026-11-27 10:00:00", `explain` adds " UTC" where a
line stands alone, and machine-read output (history, notifications, JSON) uses ISO 8601 with a "Z".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

TimeStyle = Literal["table", "labelled", "iso"]
_FORMATS: dict[TimeStyle, str] = {
    "table": "%Y-%m-%d %H:%M:%S",
    "labelled": "%Y-%m-%d %H:%M:%S UTC",
    "iso": "%Y-%m-%dT%H:%M:%SZ",
}


def utc_text(epoch: float | None, style: TimeStyle = "table", *, missing: str = "-") -> str:
    """Pure: `epoch` (seconds) in UTC to the whole second, in `style`; `missing` when there is no time.

    "table" -> "2026-11-27 10:00:00", "labelled" -> "2026-11-27 10:00:00 UTC",
    "iso" -> "2026-11-27T10:00:00Z".
    """
    if epoch is None:
        return missing
    return datetime.fromtimestamp(epoch, UTC).strftime(_FORMATS[style])
