"""`syncd explain`'s text: an `Explanation` for a terminal (and the status page's explain page), section by
section. Pure: it only formats.

Every line goes through `printable` last: names, UPNs, raw phone values, group names and error texts come
from Graph, SmartCommunicator and the database, and a control character or bidi override among them is
shown as an escape instead of acting on the terminal.
"""

from __future__ import annotations

from syncd.core.model import AgentFields
from syncd.core.text import printable
from syncd.core.times import utc_text
from syncd.reports.explain.model import Explanation


def render_text(explanation: Explanation) -> str:
    """Pure: the explanation as text for a terminal, section by section (ends with a newline); control
    characters and bidi overrides in what was read are shown as escapes (`printable`)."""
    e = explanation
    lines: list[str] = []

    def row(label: str, value: object) -> None:
        lines.append(f"  {label:<17} {value}")

    def fields_rows(label: str, fields: AgentFields) -> None:
        row(label, f"phone {fields.phone_number}")
        row("", f"UPN {fields.upn or '-'}")
        row("", f"consistency GUID {fields.consistency_id or '-'}")
        row("", f"tenant {fields.tenant_id}")

    def section(title: str) -> None:
        if lines:
            lines.append("")
        lines.append(title)

    who = e.who
    section("Who")
    row("object ID", who.object_id)
    row("UPN", who.upn or "-")
    row("display name", who.display_name or "-")
    row("account enabled", _yes_no(who.account_enabled))
    if who.in_graph is False:
        row("in Graph", "no: the user is not in Graph (deleted, or never in this tenant)")
    if who.error:
        row("error", who.error)

    m = e.membership
    section("Membership")
    configured = ", ".join(group.shown() for group in m.configured)
    if m.error:
        row("configured groups", configured)
        row("error", m.error)
    elif m.paths:
        groups = len(m.member_of)
        lines.append(f"  member through {groups} of {len(m.configured)} configured group(s):")
        person = who.upn or who.object_id
        lines.extend(f"    {' > '.join(g.shown() for g in path)} > {person}" for path in m.paths)
    elif who.in_graph:
        if m.truncated:
            lines.append(
                f"  no path found from a configured group ({configured}) within the first "
                f"{m.groups_visited} nested groups searched: membership is not known (a cycle reads the "
                "groups' transitive members and may still find the person)"
            )
        else:
            lines.append(f"  not a member of any configured group ({configured}): this alone means no agent")
        if m.direct_groups:
            row("direct groups", ", ".join(group.shown() for group in m.direct_groups))
    else:
        lines.append("  not in Graph, so in no configured group")
    if m.excluded_paths:
        lines.append(
            f"  excluded through {len({path[0].id for path in m.excluded_paths})} of {len(m.excluded)} "
            "excluded group(s) (graph.exclude_group_ids):"
        )
        person = who.upn or who.object_id
        lines.extend(f"    {' > '.join(g.shown() for g in path)} > {person}" for path in m.excluded_paths)
    elif m.excluded and who.in_graph and not m.error and not m.truncated:
        row("excluded groups", f"in none of {', '.join(group.shown() for group in m.excluded)}")

    f = e.filter
    if f.expression:
        section("Filter (graph.filter)")
        row("expression", f.expression)
        if f.passed is True:
            row("result", "passes")
        elif f.passed is False:
            row("result", f"fails: {f.failed}")
        else:
            row("result", "not evaluated: the user was not read from Graph")

    p = e.phone
    section(f"Phone (sources: {', '.join(p.chain) or '-'}; region {p.default_region or '-'})")
    winner = next((v.source for v in p.sources if v.chosen), None)
    for verdict in p.sources:
        raw = repr(verdict.raw) if verdict.raw is not None else ""
        if verdict.e164 is not None:
            shown = f"{raw} -> {verdict.e164}"
            shown += "   <- chosen" if verdict.chosen else f"   (not used: {winner} comes first)"
        else:
            # to_e164's problems quote the raw value already ("'n/a' is not a phone number").
            problem = verdict.problem or ""
            shown = problem if not raw or problem.startswith(raw) else f"{raw}: {problem}"
        row(verdict.source, shown)
        lines.extend(f"  {'':<17}   {note}" for note in verdict.notes)
    if p.error:
        row("error", p.error)
    elif not p.sources:
        lines.append("  not read: the user is not in Graph")
    if p.in_scope is True:
        row("verdict", f"in scope with {p.number} from {p.source}")
    elif p.in_scope is False:
        row("verdict", f"skipped: {p.skip_reason} ({p.detail})")

    c = e.consistency
    section("Consistency GUID")
    if c.error:
        row("error", c.error)
    else:
        row("immutable ID", repr(c.raw) if c.raw is not None else "-")
        row("GUID", c.guid or "-")
        row("", c.note)

    r = e.record
    section("Our record")
    record = r.record
    if record is None:
        lines.append("  none: syncd has never recorded this person")
    else:
        row("status", f"{record.status.value}   (changed {utc_text(r.updated_at, 'labelled')})")
        if record.skip_reason is not None:
            row("skip reason", record.skip_reason.value)
        if record.agent is None:
            row("agent pushed", "none")
        else:
            fields_rows("agent pushed", record.agent)
        row("number from", record.phone_source or "-")
        row("attempts", record.attempts)
        if record.next_attempt_at is not None:
            row("next retry", utc_text(record.next_attempt_at, "labelled"))
        if record.left_scope_at is not None:
            row(
                "out of scope",
                f"since {utc_text(record.left_scope_at, 'labelled')} (agent kept: offboard grace)",
            )
        if record.detail:
            row("detail", record.detail)
        row("last success", utc_text(r.last_success_at, "labelled"))

    rm = e.remote
    section("SmartCommunicator now")
    if rm.error:
        row("error", rm.error)
    if rm.agent is not None:
        row("agent", rm.agent.status)
        fields_rows("", AgentFields.of_agent(rm.agent, None))
    elif not rm.error:
        lines.append("  no agent for this object ID")
    if rm.number_checked is not None:
        holder = rm.number_holder
        if holder is None:
            row("number", f"{rm.number_checked} is held by no other agent")
        else:
            upn = f" ({holder.upn})" if holder.upn else ""
            row(
                "number",
                f"{rm.number_checked} is held by agent {holder.user_object_id}{upn}, {holder.status}",
            )

    section("Last operations")
    if not e.operations:
        lines.append("  none")
    for op in e.operations:
        status = f"HTTP {op.http_status}" if op.http_status is not None else ""
        moved = ""
        if op.from_object_id is not None:  # a relink: say which way the agent moved
            moved = f"from {op.from_object_id}  " if op.object_id == who.object_id else f"to {op.object_id}  "
        lines.append(
            f"  {utc_text(op.created_at, 'labelled')}  {op.action.value:<8}  {op.outcome.value:<12}  "
            f"{status:<8}  {moved}{op.error or ''}".rstrip()
        )

    n = e.next_cycle
    section("Next cycle")
    lines.append(f"  {n.text}")
    if n.action == "wait":
        lines.append(f"  (syncd sync --user {who.object_id} retries at once)")
    if n.full_cycle:
        lines.append(f"  a full cycle would instead: {n.full_cycle}")
    return "\n".join(printable(line) for line in lines) + "\n"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")
