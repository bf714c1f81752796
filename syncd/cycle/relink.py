"""`syncd relink OLD NEW`: an admin moves the agent of object ID OLD to the person NEW, by hand.

A cycle relinks by itself only a person whose consistency GUID names the old agent (`sync.relink = "auto"`,
see `syncd.core.reconcile.plan`). This is for everything else: a cloud-only user re-created without an
anchor (the PATCH then addresses the agent by the old object ID, `key_id=user_object_id`), anchors that
changed, or `sync.relink = "off"`. It sends the same single PATCH as a cycle's relink (`transfer_data`
true unless asked otherwise; never a DELETE or a POST), recorded like every write: a run of kind "relink",
its operation pending before the PATCH and settled after with both people's records in one transaction.

It refuses (exit 2, saying why, nothing sent) when NEW is not in scope, NEW already has an agent, OLD is
still in scope (two live people: moving the agent would take it from one of them), or OLD has no agent.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.config.fields import GUID
from syncd.config.settings import Settings
from syncd.core.exits import EXIT_CONFIG, EXIT_FAILURES, EXIT_OK
from syncd.core.model import Action, AgentFields, Change, DesiredState, Outcome
from syncd.core.reconcile import changed_fields
from syncd.core.settle import settle, settle_moved_from
from syncd.core.text import printable
from syncd.cycle.apply import relink_agent, relink_key, relink_patch
from syncd.cycle.recovery import active_agent
from syncd.smartcomm import SmartCommClient, SmartCommError
from syncd.store import Store

log = structlog.get_logger("syncd.relink")

RUN_KIND = "relink"
"""The `kind` of the run that records a relink by hand."""


class RelinkRefused(Exception):
    """The relink cannot be done as asked; the message says why (the command exits 2)."""


@dataclass
class RelinkResult:
    """What `syncd relink` did (or would do, with `dry_run`), for its output and exit code."""

    old: str
    new: str
    dry_run: bool
    transfer_data: bool
    exit_code: int = EXIT_OK
    message: str = ""
    """One line for the admin: what was done, or why not."""
    run_id: int | None = None
    key: str | None = None
    """The PATCH's path segment (a consistency GUID, or the old object ID)."""
    key_id: str | None = None
    body: dict[str, str | bool] = field(default_factory=dict)
    """The PATCH's body as sent (or as it would be sent)."""
    before: AgentFields | None = None
    """The agent of `old` as read before the PATCH."""
    after: AgentFields | None = None
    """The agent as the service answered (None: not sent, or failed)."""
    outcome: str = "refused"
    """"refused", "planned" (a dry run), "ok", "failed" or "pending" (the answer was lost)."""

    def to_json(self) -> dict[str, Any]:
        def fields(value: AgentFields | None) -> dict[str, Any] | None:
            if value is None:
                return None
            return {
                "phone_number": value.phone_number,
                "upn": value.upn,
                "consistency_id": value.consistency_id,
                "tenant_id": value.tenant_id,
            }

        return {
            "from_object_id": self.old,
            "object_id": self.new,
            "dry_run": self.dry_run,
            "transfer_data": self.transfer_data,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "message": self.message,
            "run_id": self.run_id,
            "key": self.key,
            "key_id": self.key_id,
            "body": self.body,
            "before": fields(self.before),
            "after": fields(self.after),
        }


def object_id_of(text: str, what: str) -> str:
    """Pure: `text` as an object ID (a GUID, lower case), or RelinkRefused naming `what` ("OLD", "NEW")."""
    value = text.strip().lower()
    if not GUID.match(value):
        raise RelinkRefused(f"{what} {text.strip()!r} is not an object ID (a GUID)")
    return value


def operator() -> str:
    """Who runs `syncd relink` here, for the run's record: the OS user and host ("root on syncd-7d9f")."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container's arbitrary user)
        user = f"uid {os.getuid()}"
    return printable(f"syncd relink by {user} on {socket.gethostname()}")[:200]


async def relink_by_hand(
    settings: Settings,
    store: Store,
    client: SmartCommClient,
    desired: DesiredState,
    result: RelinkResult,
    *,
    now: float,
) -> RelinkResult:
    """Check, then (unless a dry run) send and record the relink of `result.old` to `result.new`, with
    `desired` read in full from Graph. Refusals raise RelinkRefused; SmartCommunicator failures end up in
    the result (exit 1)."""
    old, new = result.old, result.new
    if old == new:
        raise RelinkRefused("OLD and NEW are the same object ID")
    member = desired.members.get(new)
    if member is None:
        skipped = desired.skipped.get(new)
        why = (
            f"out of scope ({skipped.reason.value}: {skipped.detail})"
            if skipped is not None
            else "in no configured group, or not in the directory"
        )
        raise RelinkRefused(f"NEW {new} is not in scope: {why}; an agent can only move to a person in scope")
    holder = desired.members.get(old)
    if holder is not None:
        raise RelinkRefused(
            f"OLD {old} ({holder.upn or 'no UPN'}) is still in scope: two live people, and moving the agent "
            "would take it from one of them; remove OLD from the groups (or wait until it is gone) first"
        )
    recorded = store.load_recorded([old, new])
    mine = recorded.get(new)
    if mine is not None and mine.agent is not None:
        raise RelinkRefused(
            f"NEW {new} already has an agent (number {mine.agent.phone_number} in our records)"
        )
    theirs = await active_agent(client, new)
    if theirs is not None:
        raise RelinkRefused(f"NEW {new} already has an agent on SmartCommunicator ({theirs.phone_number})")
    agent = await active_agent(client, old)
    if agent is None:
        raise RelinkRefused(f"OLD {old} has no active agent on SmartCommunicator: there is nothing to move")
    previous_old = recorded.get(old)
    believed = AgentFields.of_agent(agent, previous_old.upn if previous_old is not None else None)
    wanted = AgentFields.of(member)
    change = Change(
        Action.RELINK,
        new,
        wanted,
        believed,
        ("user_object_id", *changed_fields(believed, wanted)),
        reason="by hand (syncd relink)",
        from_object_id=old,
        transfer_data=result.transfer_data,
    )
    result.key, result.key_id = relink_key(change)
    result.body = relink_patch(change).to_json()
    result.before = believed
    if result.dry_run:
        result.outcome = "planned"
        result.message = f"would move the agent of {old} to {new} ({member.upn or 'no UPN'}); nothing sent"
        return result

    run_id = store.begin_run(trigger="cli", kind=RUN_KIND, dry_run=False, requested_by=operator())
    result.run_id = run_id
    op_id = store.start_operation(run_id, change)
    sync = settings.sync
    try:
        moved = await relink_agent(client, change)
    except SmartCommError as exc:
        result.exit_code = EXIT_FAILURES
        if exc.outcome_was_unknown:
            # Left pending: the next cycle reads the agent back and settles both records.
            result.outcome = "pending"
            result.message = f"the answer was lost ({exc.message}); the next sync settles it by reading back"
            store.finish_run(run_id, outcome="failed", counts={"planned_relink": 1, "relink_pending": 1})
            return result
        record = settle(
            change,
            Outcome.FAILED,
            mine,
            now=now,
            upn=member.upn,
            error=exc.message,
            retry_initial_s=sync.retry_initial_s,
            retry_max_s=sync.retry_max_s,
        )
        kept = settle_moved_from(change, False, previous_old)
        store.settle_operation(
            op_id,
            outcome=Outcome.FAILED,
            record=record,
            http_status=exc.status,
            error=exc.message,
            also=(kept,) if kept is not None else (),
        )
        store.finish_run(
            run_id, outcome="failed", counts={"planned_relink": 1, "relink_failed": 1}, error=exc.message
        )
        result.outcome = "failed"
        result.message = f"SmartCommunicator refused the relink: {exc.message}"
        log.warning("relink.failed", object_id=new, from_object_id=old, error=exc.message)
        return result
    result.after = AgentFields.of_agent(moved, member.upn)
    record = settle(
        change,
        Outcome.OK,
        mine,
        now=now,
        upn=member.upn,
        agent=result.after,
        phone_source=member.phone_source,
    )
    gone = settle_moved_from(change, True, previous_old)
    store.settle_operation(op_id, outcome=Outcome.OK, record=record, also=(gone,) if gone is not None else ())
    store.finish_run(run_id, outcome="ok", counts={"planned_relink": 1, "relink_ok": 1})
    result.outcome = "ok"
    result.message = f"moved the agent of {old} to {new} ({member.upn or 'no UPN'})"
    log.info("relink.done", object_id=new, from_object_id=old, transfer_data=result.transfer_data)
    return result


__all__ = ["EXIT_CONFIG", "RUN_KIND", "RelinkRefused", "RelinkResult", "object_id_of", "relink_by_hand"]
