"""What `syncd check` finds: one `Check` per line of its checklist (ok, FAIL, warn or skip, a detail, and for
a failure or a warning the fix in one sentence), the `Report` they make, its exit code, its text and JSON.

Pure: no I/O; the checks themselves are in the sibling modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

EXIT_ALL_PASS = 0
EXIT_SOME_FAILED = 2
"""The exit code when a check failed: like a configuration error, something an admin must fix."""


class Status(StrEnum):
    """How one check went."""

    OK = "ok"
    FAIL = "fail"
    """syncd would not work (or would do wrong): the exit code is 2."""
    WARN = "warn"
    """syncd would work, but something deserves a look."""
    SKIP = "skip"
    """Not checked: it does not apply to this configuration, or what it needs failed already."""

    @property
    def label(self) -> str:
        """The status as the checklist prints it: `ok`, `FAIL`, `warn`, `skip`."""
        return "FAIL" if self is Status.FAIL else self.value


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    """A stable identifier for scripts (`entra_token`, `group`, `database_schema`, ...)."""
    title: str
    """What was checked, in words."""
    status: Status
    detail: str
    """What was found."""
    fix: str = ""
    """For a failure or a warning, what to do, in one sentence."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """What was found as values (`--json`): the token's roles, a group's name and member count, ..."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix or None,
            "data": dict(self.data),
        }


def ok(name: str, title: str, detail: str, **data: Any) -> Check:
    """Pure: a passed check."""
    return Check(name, title, Status.OK, detail, data=data)


def fail(name: str, title: str, detail: str, fix: str, **data: Any) -> Check:
    """Pure: a failed check and its fix."""
    return Check(name, title, Status.FAIL, detail, fix, data=data)


def warn(name: str, title: str, detail: str, fix: str, **data: Any) -> Check:
    """Pure: a check that passed with a reservation, and what to do about it."""
    return Check(name, title, Status.WARN, detail, fix, data=data)


def skip(name: str, title: str, detail: str, **data: Any) -> Check:
    """Pure: a check that was not made, and why."""
    return Check(name, title, Status.SKIP, detail, data=data)


@dataclass(frozen=True)
class Report:
    """Every check, in the order they were listed."""

    checks: Sequence[Check]
    config_file: str | None = None
    """The configuration file read, None when everything came from the environment."""

    def count(self, status: Status) -> int:
        return sum(1 for check in self.checks if check.status is status)

    @property
    def exit_code(self) -> int:
        """0 when no check failed, 2 when one did."""
        return EXIT_SOME_FAILED if self.count(Status.FAIL) else EXIT_ALL_PASS

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == EXIT_ALL_PASS,
            "exit_code": self.exit_code,
            "config_file": self.config_file,
            "counts": {status.value: self.count(status) for status in Status},
            "checks": [check.to_json() for check in self.checks],
        }

    def render_text(self) -> str:
        """The checklist: one line per check, the fix indented below each failure and warning, a verdict."""
        where = self.config_file or "the environment only (no config file)"
        lines = [f"syncd check: configuration from {where}", ""]
        width = max((len(check.title) for check in self.checks), default=0)
        for check in self.checks:
            lines.append(f"{check.status.label:<5} {check.title:<{width}}  {check.detail}".rstrip())
            if check.fix:
                lines.append(f"{'':<5} {'':<{width}}  fix: {check.fix}")
        failed = self.count(Status.FAIL)
        tally = (
            f"{self.count(Status.OK)} ok, {_plural(self.count(Status.WARN), 'warning')}, "
            f"{self.count(Status.SKIP)} skipped"
        )
        lines.append("")
        if failed:
            failures = _plural(failed, "check")
            lines.append(f"{failures} failed ({tally}): fix what FAIL says, then run syncd check again.")
        else:
            lines.append(f"No check failed ({tally}).")
        return "\n".join(lines) + "\n"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
