"""The limits of the safety guards (`sync.max_offboard`, `sync.max_update`, ...): a count of agents, a
percentage of the agents syncd manages, or both (the smaller wins), and how many changes one allows. Pure.

A `Limit` is what the configuration says; `allowed_count` turns it into a number for a cycle, given how many
agents syncd manages at its start; an `Allowance` is both together with the key's name, for a guard to
compare and to describe in its message. Parsing the configuration's spelling (`25`, `"10%"`,
`[200, "10%"]`) is `syncd.config.limits`' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEFAULT_MAX_RELINK = 50
"""`sync.max_relink` when it is not given: the planner's default (`syncd.core.reconcile.plan`), kept here so
that loading the settings does not load the planner."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A guard's limit as configured: `count` agents, `percent` of the agents we manage, or both (the smaller
    wins). Neither (`NO_LIMIT`) means the guard is off. `count` 0 allows no change at all."""

    count: int | None = None
    percent: Decimal | None = None
    """Above 0 and at most 100."""

    @classmethod
    def of(cls, value: Limit | int) -> Limit:
        """Pure: `value` as a Limit (a plain int is a count)."""
        return value if isinstance(value, Limit) else cls(count=value)

    @property
    def off(self) -> bool:
        """Whether this limit lets everything through (the guard is off)."""
        return self.count is None and self.percent is None

    def spelled(self) -> str:
        """Pure: the limit as the configuration file writes it: `25`, `"10%"`, `[200, "10%"]`, or `0` for a
        limit that is off."""
        percent = None if self.percent is None else f'"{percent_text(self.percent)}%"'
        if self.count is not None and percent is not None:
            return f"[{self.count}, {percent}]"
        if percent is not None:
            return percent
        return str(self.count) if self.count is not None else "0"


NO_LIMIT = Limit()
"""A limit that lets everything through (`sync.max_update = 0`)."""


def percent_text(percent: Decimal) -> str:
    """Pure: a percentage without trailing zeros or an exponent: 10, 2.5."""
    return f"{percent.normalize():f}"


def allowed_count(limit: Limit, managed: int) -> int | None:
    """Pure: how many changes `limit` allows in a cycle that starts with `managed` agents under our care;
    None when the limit is off.

    A percentage allows its share of `managed` rounded down, so "more than 10%" stops exactly the cycles
    with more changes than a tenth of the agents (10% of 25 allows 2; 3 stop). With a count too, the smaller
    of the two wins.
    """
    allowed: list[int] = []
    if limit.count is not None:
        allowed.append(limit.count)
    if limit.percent is not None:
        allowed.append(int(limit.percent * max(managed, 0) // 100))
    return min(allowed) if allowed else None


@dataclass(frozen=True, slots=True)
class Allowance:
    """A guard's limit for one cycle: the key, the limit as configured, and the agents we manage."""

    key: str
    """The configuration key, dotted: "sync.max_offboard"."""
    limit: Limit
    managed: int = 0
    """Agents syncd manages at the start of the cycle (what a percentage is of)."""

    @property
    def allowed(self) -> int | None:
        """How many changes pass (None: the guard is off)."""
        return allowed_count(self.limit, self.managed)

    def exceeded_by(self, changes: int) -> bool:
        """Pure: whether `changes` planned changes are more than this allows."""
        allowed = self.allowed
        return allowed is not None and changes > allowed

    def describe(self) -> str:
        """Pure: the limit for a guard's message: "sync.max_offboard = 25",
        'sync.max_offboard = "10%" (2 of the 25 managed agents)',
        'sync.max_update = [200, "10%"] (2: the smaller of 200 and 10% of the 25 managed agents)'."""
        limit = self.limit
        text = f"{self.key} = {limit.spelled()}"
        if limit.percent is None:
            return text
        if limit.count is None:
            return f"{text} ({self.allowed} of the {self.managed} managed agents)"
        share = f"{percent_text(limit.percent)}% of the {self.managed} managed agents"
        return f"{text} ({self.allowed}: the smaller of {limit.count} and {share})"
