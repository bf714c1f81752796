"""What `syncd explain` says about one person, section by section: the dataclasses `explain_person` fills
in, their `--json` form, and the errors for a person who cannot be told apart or found.

Pure: plain data and its formatting. An audited operation is described structurally (`OperationLike`): the
store's `OperationRecord` would bring the database into a module that only holds data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from syncd.core.model import Action, Agent, AgentFields, Outcome, Recorded

QueryKind = Literal["object_id", "upn", "phone", "name"]
NextAction = Literal[
    "onboard", "update", "offboard", "relink", "nothing", "wait", "offboard_pending", "unknown"
]


class PersonNotFound(Exception):
    """Nobody we know matches what was asked (in our records, in Graph, among Teams numbers); the message is
    one line for the admin."""


class QueryNotUnderstood(PersonNotFound):
    """What was asked is neither a UPN, an object ID nor a phone number, so nothing was looked up (a key
    such as "../../groups" never reaches a Graph path)."""


class AmbiguousPerson(PersonNotFound):
    """Several people match (a number two people have had): ask again by object ID."""

    def __init__(self, message: str, candidates: Sequence[tuple[str, str | None]]) -> None:
        super().__init__(message)
        self.candidates = list(candidates)
        """(object ID, UPN if known) of each match."""


# --- the sections --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRef:
    """A group as shown: its object ID and display name (None when Graph did not give one)."""

    id: str
    display_name: str | None = None

    def shown(self) -> str:
        return f"{self.display_name} ({self.id})" if self.display_name else self.id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "display_name": self.display_name}


@dataclass
class Who:
    """Who the person is, as Graph says (and as we recorded when Graph does not know them)."""

    object_id: str
    upn: str | None = None
    display_name: str | None = None
    account_enabled: bool | None = None
    in_graph: bool | None = None
    """False: Graph has no such user (deleted); None: Graph could not be read."""
    in_records: bool = False
    error: str | None = None


@dataclass
class Membership:
    """Which configured groups make the person a member, and through which nested groups."""

    configured: list[GroupRef] = field(default_factory=list)
    direct_groups: list[GroupRef] = field(default_factory=list)
    """The groups the user is a direct member of (any group, configured or not)."""
    paths: list[list[GroupRef]] = field(default_factory=list)
    """Shortest paths, each from a configured group down to one of the user's direct groups."""
    groups_visited: int = 0
    """Groups whose nested groups were listed."""
    truncated: bool = False
    """The search stopped at MAX_GROUPS_VISITED before it could rule a configured group out."""
    error: str | None = None
    excluded: list[GroupRef] = field(default_factory=list)
    """The excluded groups (`graph.exclude_group_ids`), with their names when read."""
    excluded_paths: list[list[GroupRef]] = field(default_factory=list)
    """Shortest paths, each from an excluded group down to one of the user's direct groups."""

    @property
    def excluded_by(self) -> GroupRef | None:
        """The excluded group that holds the person (the first in configuration order), if one does."""
        through = {path[0].id for path in self.excluded_paths}
        return next((group for group in self.excluded if group.id in through), None)

    @property
    def member(self) -> bool | None:
        """Whether any configured group holds the person (None: not known, when Graph could not be read or
        the search stopped at MAX_GROUPS_VISITED without finding a path)."""
        if self.paths:
            return True
        return None if self.error is not None or self.truncated else False

    @property
    def member_of(self) -> list[str]:
        """The configured groups that hold the person, in configuration order."""
        through = {path[0].id for path in self.paths}
        return [group.id for group in self.configured if group.id in through]


@dataclass(frozen=True)
class SourceVerdict:
    """One phone source: what it holds and what that normalised to, or why not."""

    source: str
    raw: str | None
    """The value as Graph gives it (Teams: the chosen assignment's number); None when empty."""
    e164: str | None
    problem: str | None
    """Why the source gives no number, when it gives none."""
    chosen: bool = False
    """This source gave the agent's number (the first one with a valid number)."""
    notes: tuple[str, ...] = ()
    """Teams: the user's other assignments and why they do not count; a tie."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "raw": self.raw,
            "e164": self.e164,
            "problem": self.problem,
            "chosen": self.chosen,
            "notes": list(self.notes),
        }


@dataclass
class Phone:
    """The phone source chain for this person, and the overall verdict of the mapping (`map_user`)."""

    chain: list[str] = field(default_factory=list)
    default_region: str = ""
    sources: list[SourceVerdict] = field(default_factory=list)
    in_scope: bool | None = None
    """Whether the mapping takes the person in (None: not known)."""
    number: str | None = None
    source: str | None = None
    skip_reason: str | None = None
    detail: str | None = None
    """The mapping's skip detail."""
    error: str | None = None


@dataclass
class Filter:
    """`graph.filter` and the person's result: passes, or the clause that failed and what it saw."""

    expression: str = ""
    """The filter as configured ("" when there is none)."""
    passed: bool | None = None
    """None: no filter, or the user was not read."""
    failed: str | None = None
    """The clause that failed and the values it saw."""

    def to_json(self) -> dict[str, Any]:
        return {"expression": self.expression or None, "passed": self.passed, "failed_clause": self.failed}


@dataclass
class Consistency:
    """The consistency GUID: `onPremisesImmutableId` as Graph gives it and what it decodes to."""

    raw: str | None = None
    guid: str | None = None
    note: str = ""
    error: str | None = None


@dataclass
class RecordSection:
    """Our record of the person and when it last changed; when a write last succeeded."""

    record: Recorded | None = None
    updated_at: float | None = None
    last_success_at: float | None = None


@dataclass
class Remote:
    """The agent SmartCommunicator holds now, and who holds the number we want when it is not ours."""

    agent: Agent | None = None
    number_checked: str | None = None
    """The number looked up by `key_id=phone_number` (it differs from the agent's, or there is none)."""
    number_holder: Agent | None = None
    """The agent holding `number_checked`, when it is another object's."""
    error: str | None = None


@dataclass(frozen=True)
class NextCycle:
    """What the next cycle would do with this person, and why."""

    action: NextAction
    text: str
    """One sentence for the admin."""
    fields: tuple[str, ...] = ()
    """For an update: the fields that would change."""
    waiting_until: float | None = None
    """A retry's backoff, or (offboard_pending) when the offboard falls due."""
    full_cycle: str | None = None
    """What a full cycle (which compares with the agent itself) would do instead, when that differs."""
    relink_from: str | None = None
    """For a relink: the object ID whose agent would move to this person."""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "text": self.text,
            "fields": list(self.fields),
            "waiting_until": self.waiting_until,
            "full_cycle": self.full_cycle,
            "relink_from": self.relink_from,
        }


class OperationLike(Protocol):
    """What an explanation reads of one write in the audit log (`syncd.store.OperationRecord`)."""

    @property
    def id(self) -> int: ...
    @property
    def run_id(self) -> int: ...
    @property
    def object_id(self) -> str: ...
    @property
    def from_object_id(self) -> str | None: ...
    @property
    def action(self) -> Action: ...
    @property
    def outcome(self) -> Outcome: ...
    @property
    def http_status(self) -> int | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def settled_at(self) -> float | None: ...


@dataclass
class Explanation:
    """Everything syncd knows about one person, section by section (see `syncd.reports.explain`)."""

    query: str
    who: Who
    membership: Membership
    phone: Phone
    consistency: Consistency
    record: RecordSection
    remote: Remote
    operations: Sequence[OperationLike]
    next_cycle: NextCycle
    generated_at: float
    filter: Filter = field(default_factory=Filter)

    @property
    def errors(self) -> list[str]:
        """What could not be read, one message per failed section."""
        found = [
            self.who.error,
            self.membership.error,
            self.phone.error,
            self.consistency.error,
            self.remote.error,
        ]
        return list(dict.fromkeys(error for error in found if error))

    def to_json(self) -> dict[str, Any]:
        """Pure: the `--json` document, with the same sections as the text and stable keys."""
        record = self.record.record
        excluded_by = self.membership.excluded_by
        return {
            "query": self.query,
            "object_id": self.who.object_id,
            "generated_at": self.generated_at,
            "who": {
                "object_id": self.who.object_id,
                "upn": self.who.upn,
                "display_name": self.who.display_name,
                "account_enabled": self.who.account_enabled,
                "in_graph": self.who.in_graph,
                "in_records": self.who.in_records,
                "error": self.who.error,
            },
            "membership": {
                "member": self.membership.member,
                "member_of": self.membership.member_of,
                "configured_groups": [group.to_json() for group in self.membership.configured],
                "direct_groups": [group.to_json() for group in self.membership.direct_groups],
                "paths": [[group.to_json() for group in path] for path in self.membership.paths],
                "groups_visited": self.membership.groups_visited,
                "truncated": self.membership.truncated,
                "error": self.membership.error,
                "excluded_groups": [group.to_json() for group in self.membership.excluded],
                "excluded_paths": [
                    [group.to_json() for group in path] for path in self.membership.excluded_paths
                ],
                "excluded_by": excluded_by.to_json() if excluded_by is not None else None,
            },
            "filter": self.filter.to_json(),
            "phone": {
                "chain": list(self.phone.chain),
                "default_region": self.phone.default_region,
                "sources": [verdict.to_json() for verdict in self.phone.sources],
                "in_scope": self.phone.in_scope,
                "number": self.phone.number,
                "source": self.phone.source,
                "skip_reason": self.phone.skip_reason,
                "detail": self.phone.detail,
                "error": self.phone.error,
            },
            "consistency_guid": {
                "raw": self.consistency.raw,
                "guid": self.consistency.guid,
                "note": self.consistency.note,
                "error": self.consistency.error,
            },
            "record": {
                "found": record is not None,
                "status": record.status.value if record is not None else None,
                "agent": _fields_json(record.agent) if record is not None else None,
                "upn": record.upn if record is not None else None,
                "phone_source": record.phone_source if record is not None else None,
                "skip_reason": record.skip_reason.value
                if record is not None and record.skip_reason is not None
                else None,
                "detail": record.detail if record is not None else None,
                "attempts": record.attempts if record is not None else None,
                "next_attempt_at": record.next_attempt_at if record is not None else None,
                "left_scope_at": record.left_scope_at if record is not None else None,
                "updated_at": self.record.updated_at,
                "last_success_at": self.record.last_success_at,
            },
            "remote": {
                "agent": _agent_json(self.remote.agent),
                "number_checked": self.remote.number_checked,
                "number_holder": _agent_json(self.remote.number_holder),
                "error": self.remote.error,
            },
            "operations": [
                {
                    "id": op.id,
                    "run_id": op.run_id,
                    "created_at": op.created_at,
                    "settled_at": op.settled_at,
                    "action": op.action.value,
                    "object_id": op.object_id,
                    "from_object_id": op.from_object_id,
                    "outcome": op.outcome.value,
                    "http_status": op.http_status,
                    "error": op.error,
                }
                for op in self.operations
            ],
            "next_cycle": self.next_cycle.to_json(),
            "errors": self.errors,
        }


def _fields_json(fields: AgentFields | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {
        "phone_number": fields.phone_number,
        "upn": fields.upn,
        "consistency_id": fields.consistency_id,
        "tenant_id": fields.tenant_id,
    }


def _agent_json(agent: Agent | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "user_object_id": agent.user_object_id,
        "status": agent.status,
        "phone_number": agent.phone_number,
        "upn": agent.upn,
        "consistency_id": agent.consistency_id,
        "tenant_id": agent.tenant_id,
    }
