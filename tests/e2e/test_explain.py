"""`syncd explain` as an admin runs it, against both emulators over HTTPS.

Each test asserts what the command printed, its exit code, and that explaining wrote nothing to
SmartCommunicator (the emulator's request log).
"""

from __future__ import annotations

import contextlib

import pytest
from starlette.types import Message, Receive, Scope, Send

from syncd.config.loader import load_settings
from syncd.config.settings import GraphSettings
from syncd.emulators.graph import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, ScriptedFault
from syncd.emulators.server import TestCA, serve_https
from syncd.emulators.smartcomm import Faults
from syncd.graph.errors import GraphReadError
from syncd.graph.source import GraphSource
from tests.e2e.conftest import World

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
STRANGER = "e2f19e0a-0490-41f4-8509-44a3390ae0b6"
IMMUTABLE_ID = "AAECAwQFBgcICQoLDA0ODw=="  # base64 of bytes 0..15: GUID 03020100-0504-0706-0809-0a0b0c0d0e0f


def use_teams(world: World) -> None:
    text = world.config.read_text()
    chain = 'phone_source = ["teams", "businessPhones"]'
    world.config.write_text(text.replace("retry_delay_s = 0\n", f"retry_delay_s = 0\n{chain}\n"))


def section(output: str, title: str) -> str:
    """The lines of one section of the text output (up to the next blank line)."""
    start = output.index(f"\n{title}" if not output.startswith(title) else title)
    end = output.find("\n\n", start + 1)
    return output[start : end if end != -1 else None].strip("\n")


def test_skipped_users_show_the_raw_value_and_the_reason(world: World) -> None:
    nophone = world.add_user("nophone", "")
    garbage = world.add_user("garbage", "n/a")
    assert world.sync_in_process().exit_code == 0

    result = world.run("explain", "nophone@contoso.com")
    assert result.code == 0, result.stderr
    assert f"  object ID         {nophone}" in result.stdout
    phone = section(result.stdout, "Phone")
    assert "  businessPhones    empty" in phone
    assert "  verdict           skipped: no_phone (businessPhones is empty)" in phone
    assert "  status            skipped" in section(result.stdout, "Our record")
    assert section(result.stdout, "Next cycle") == (
        "Next cycle\n  nothing to do: out of scope (no_phone: businessPhones is empty), "
        "and syncd manages no agent for them"
    )

    result = world.run("explain", garbage)
    assert result.code == 0, result.stderr
    phone = section(result.stdout, "Phone")
    assert "  businessPhones    'n/a' is not a phone number" in phone
    assert "skipped: invalid_phone (businessPhones 'n/a' is not a phone number)" in phone
    assert "no agent for this object ID" in section(result.stdout, "SmartCommunicator now")
    assert world.writes() == []


def test_an_onboarded_user_by_upn_object_id_and_number(world: World) -> None:
    ada = world.add_user(
        "ada", "(415) 555-0100", display_name="Ada Lovelace", on_premises_immutable_id=IMMUTABLE_ID
    )
    assert world.sync_in_process().exit_code == 0
    world.smartcomm.clear_requests()

    by_upn = world.run("explain", "ADA@contoso.com")
    assert by_upn.code == 0, by_upn.stderr
    out = by_upn.stdout
    assert section(out, "Who") == (
        f"Who\n  object ID         {ada}\n  UPN               ada@contoso.com\n"
        "  display name      Ada Lovelace\n  account enabled   yes"
    )
    assert f"SmartCommunicator agents ({world.group}) > ada@contoso.com" in section(out, "Membership")
    phone = section(out, "Phone")
    assert "  businessPhones    '(415) 555-0100' -> +14155550100   <- chosen" in phone
    assert "  verdict           in scope with +14155550100 from businessPhones" in phone
    assert "  GUID              03020100-0504-0706-0809-0a0b0c0d0e0f" in section(out, "Consistency GUID")
    record = section(out, "Our record")
    assert "  status            active" in record
    assert (
        "  agent pushed      phone +14155550100\n"
        "                    UPN ada@contoso.com\n"
        "                    consistency GUID 03020100-0504-0706-0809-0a0b0c0d0e0f\n"
        f"                    tenant {TENANT}\n"
    ) in record
    assert "  number from       businessPhones" in record
    assert section(out, "SmartCommunicator now") == (
        "SmartCommunicator now\n  agent             active\n                    phone +14155550100\n"
        "                    UPN ada@contoso.com\n"
        "                    consistency GUID 03020100-0504-0706-0809-0a0b0c0d0e0f\n"
        f"                    tenant {TENANT}"
    )
    operations = section(out, "Last operations").splitlines()
    assert len(operations) == 2
    assert "  onboard   ok" in operations[1]
    assert section(out, "Next cycle") == "Next cycle\n  nothing to do: the agent matches Graph"

    by_id = world.run("explain", ada.upper())
    by_number = world.run("explain", "+1 415-555-0100")
    assert (by_id.code, by_number.code) == (0, 0)
    assert section(by_id.stdout, "Who") == section(out, "Who")
    assert section(by_number.stdout, "Who") == section(out, "Who")
    # Explaining reads and never writes.
    assert world.writes() == []
    assert {
        (r.method, r.path.rsplit("/agents", 1)[-1]) for r in world.smartcomm.requests if "/agents" in r.path
    } == {("GET", f"/{ada}")}


def test_a_conflicted_user_shows_the_error_the_holder_and_the_retry(world: World) -> None:
    world.smartcomm.add_agent(user_object_id=STRANGER, tenant_id=TENANT, phone_number="+14155550101")
    bob = world.add_user("bob", "+1 415 555 0101")
    assert world.sync_in_process().exit_code == 1

    result = world.run("explain", "bob@contoso.com")
    assert result.code == 0, result.stderr
    out = result.stdout
    conflict = "TN is already registered with a different Azure Object ID"
    record = section(out, "Our record")
    assert "  status            failed" in record
    assert "  attempts          1" in record
    assert f"  detail            {conflict}" in record
    assert "  last success      -" in record
    remote = section(out, "SmartCommunicator now")
    assert "no agent for this object ID" in remote
    assert f"  number            +14155550101 is held by agent {STRANGER}, active" in remote
    [operation] = section(out, "Last operations").splitlines()[1:]
    assert "  onboard   failed" in operation
    assert f"HTTP 400  {conflict}" in operation
    next_cycle = section(out, "Next cycle")
    assert "  waiting for retry until " in next_cycle
    assert (
        "(1 failed attempt); then: onboard bob@contoso.com with +14155550101 (in scope, no agent yet); "
        f"it fails again while agent {STRANGER} holds the number (an admin must free it)"
    ) in next_cycle
    assert f"  (syncd sync --user {bob} retries at once)" in next_cycle
    assert "a full cycle would" not in next_cycle  # the agent is as we believe: there is none
    document = world.run("explain", bob, "--json").json()
    assert document["next_cycle"]["action"] == "wait"  # type: ignore[index]
    assert document["remote"]["number_holder"]["user_object_id"] == STRANGER  # type: ignore[index]


def test_a_nested_group_member_shows_the_path_and_an_outsider_is_no_member(world: World) -> None:
    sales = world.graph.add_group(display_name="Sales EMEA")
    west = world.graph.add_group(display_name="Sales West")
    world.graph.add_member(world.group, sales)
    world.graph.add_member(sales, west)
    world.graph.add_member(west, world.group)  # a cycle: harmless
    carol = world.add_user("carol", "+1 415 555 0102", group=west)
    outsider = world.graph.add_user(upn="dave@contoso.com", business_phones=["+1 415 555 0103"])
    world.graph.add_member(world.graph.add_group(display_name="Elsewhere"), outsider)

    result = world.run("explain", carol)
    assert result.code == 0, result.stderr
    assert section(result.stdout, "Membership") == (
        "Membership\n  member through 1 of 1 configured group(s):\n"
        f"    SmartCommunicator agents ({world.group}) > Sales EMEA ({sales}) > Sales West ({west}) > "
        "carol@contoso.com"
    )
    assert "none: syncd has never recorded this person" in section(result.stdout, "Our record")
    assert section(result.stdout, "Next cycle") == (
        "Next cycle\n  onboard carol@contoso.com with +14155550102 (in scope, no agent yet)"
    )

    result = world.run("explain", "dave@contoso.com")
    assert result.code == 0, result.stderr
    membership = section(result.stdout, "Membership")
    assert (
        f"  not a member of any configured group (SmartCommunicator agents ({world.group})): "
        "this alone means no agent"
    ) in membership
    assert "  direct groups     Elsewhere (" in membership
    assert "nothing to do: not in any configured group, and syncd manages no agent for them" in result.stdout


def test_json_has_every_section_with_stable_keys(world: World) -> None:
    ada = world.add_user("ada", "+1 415 555 0100")
    assert world.sync_in_process().exit_code == 0
    result = world.run("explain", "ada@contoso.com", "--json")
    assert result.code == 0, result.stderr
    document = result.json()
    assert set(document) == {
        "query", "object_id", "generated_at", "who", "membership", "filter", "phone", "consistency_guid",
        "record", "remote", "operations", "next_cycle", "errors",
    }  # fmt: skip
    assert document["object_id"] == ada
    assert document["errors"] == []
    assert document["who"] == {
        "object_id": ada,
        "upn": "ada@contoso.com",
        "display_name": None,
        "account_enabled": True,
        "in_graph": True,
        "in_records": True,
        "error": None,
    }
    membership = document["membership"]
    assert isinstance(membership, dict)
    assert (membership["member"], membership["member_of"]) == (True, [world.group])
    assert (membership["excluded_groups"], membership["excluded_paths"], membership["excluded_by"]) == (
        [],
        [],
        None,
    )
    assert document["filter"] == {"expression": None, "passed": None, "failed_clause": None}
    phone = document["phone"]
    assert isinstance(phone, dict)
    assert (phone["in_scope"], phone["number"], phone["source"]) == (True, "+14155550100", "businessPhones")
    assert phone["sources"] == [
        {
            "source": "businessPhones",
            "raw": "+1 415 555 0100",
            "e164": "+14155550100",
            "problem": None,
            "chosen": True,
            "notes": [],
        }
    ]
    record = document["record"]
    assert isinstance(record, dict)
    assert set(record) == {
        "found", "status", "agent", "upn", "phone_source", "skip_reason", "detail", "attempts",
        "next_attempt_at", "left_scope_at", "updated_at", "last_success_at",
    }  # fmt: skip
    assert (record["found"], record["status"]) == (True, "active")
    assert document["next_cycle"] == {
        "action": "nothing",
        "text": "nothing to do: the agent matches Graph",
        "fields": [],
        "waiting_until": None,
        "full_cycle": None,
        "relink_from": None,
    }
    operations = document["operations"]
    assert isinstance(operations, list)
    assert [op["outcome"] for op in operations] == ["ok"]


def test_an_unknown_person_is_one_line_and_exit_1(world: World) -> None:
    world.add_user("ada", "+1 415 555 0100")
    for asked, message in [
        (
            "nobody@contoso.com",
            "syncd: no person 'nobody@contoso.com': not in Graph and not in our records\n",
        ),
        (
            "+1 415 555 9999",
            "syncd: nobody we know has +14155559999: syncd only knows the numbers it pushed; "
            "look the person up by UPN or object ID\n",
        ),
    ]:
        result = world.run("explain", asked)
        assert result.code == 1
        assert result.stderr == message
        assert result.stdout == ""


def test_a_teams_number_finds_its_user_and_a_shared_number_asks_for_the_object_id(world: World) -> None:
    use_teams(world)
    ada = world.add_user("ada", "+1 415 555 0100")
    bob = world.add_user("bob", "+1 415 555 0101")
    world.graph.assign_number("+14155550177", bob)
    world.graph.assign_number("+14155550178", bob, category="alternate")
    assert world.sync_in_process().exit_code == 0

    result = world.run("explain", "+1 415 555 0177")
    assert result.code == 0, result.stderr
    phone = section(result.stdout, "Phone")
    assert f"  object ID         {bob}" in result.stdout
    assert "  teams             '+14155550177' -> +14155550177   <- chosen" in phone
    assert "+14155550178 (alternate, userAssigned, activated): category not configured" in phone
    assert "  businessPhones    '+1 415 555 0101' -> +14155550101   (not used: teams comes first)" in phone

    # Ada's number goes to Bob in Teams: our record (Ada's agent) and Teams (Bob) both match it.
    world.graph.unassign_number("+14155550177")
    world.graph.assign_number("+14155550100", bob)
    result = world.run("explain", "+14155550100")
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "'+14155550100' matches 2 people: " in result.stderr
    assert ada in result.stderr
    assert bob in result.stderr
    assert "run syncd explain with one object ID" in result.stderr


def test_failures_are_shown_in_their_section_and_exit_1(world: World) -> None:
    ada = world.add_user("ada", "+1 415 555 0100")
    assert world.sync_in_process().exit_code == 0
    world.smartcomm.faults = Faults(error_rate=1.0, auth_too=True)
    world.graph.inject(ScriptedFault(kind="status", status=500, path_contains="memberOf"))
    result = world.run("explain", ada)
    assert result.code == 1
    assert "Traceback" not in result.stderr
    membership = section(result.stdout, "Membership")
    assert "  error             Graph: could not read the group memberships: " in membership
    assert "  error             SmartCommunicator: could not read the agent: " in section(
        result.stdout, "SmartCommunicator now"
    )
    # What could be read is still there.
    assert "in scope with +14155550100 from businessPhones" in section(result.stdout, "Phone")
    assert "  status            active" in section(result.stdout, "Our record")
    assert "cannot tell: Graph could not be read" in section(result.stdout, "Next cycle")


def test_a_missing_section_is_a_configuration_error(world: World) -> None:
    text = world.config.read_text()
    world.config.write_text(text[: text.index("[smartcomm]")] + text[text.index("[sync]") :])
    result = world.run("explain", "ada@contoso.com")
    assert result.code == 2
    assert "smartcomm" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_query_that_is_no_upn_object_id_or_number_never_reaches_a_graph_path(world: World) -> None:
    world.add_user("ada", "+1 415 555 0100")
    world.graph.clear_requests()
    for asked in ["../../groups", "..", ".", "users?$top=999"]:
        result = world.run("explain", asked)
        assert (result.code, result.stdout) == (2, ""), asked  # a usage error: nothing was looked up
        assert result.stderr == (
            f"syncd: {asked!r} is not a UPN (name@domain), an object ID (a GUID) or a phone number: "
            "syncd explain looks people up by these only\n"
        )
    # Nothing was asked of Graph: no /v1.0/users/../../groups (read as /v1.0/groups), /v1.0 or /v1.0/users.
    assert [r.path for r in world.graph.requests if r.path.startswith("/v1.0")] == []


def test_terminal_escapes_in_a_display_name_and_upn_are_shown_not_obeyed(world: World) -> None:
    ada = world.graph.add_user(
        upn="\x1b[31mada@contoso.com", display_name="Ada \x1b]0;pwned\x07\u202eLovelace"
    )
    world.graph.add_member(world.group, ada)
    result = world.run("explain", ada)
    assert result.code == 0, result.stderr
    assert not {"\x1b", "\x07", "\u202e"} & set(result.stdout)
    who = section(result.stdout, "Who")
    assert "  UPN               \\x1b[31mada@contoso.com\n" in who
    assert "  display name      Ada \\x1b]0;pwned\\x07\\u202eLovelace\n" in who
    document = world.run("explain", ada, "--json").json()
    assert document["who"] == {  # the JSON is exact
        "object_id": ada,
        "upn": "\x1b[31mada@contoso.com",
        "display_name": "Ada \x1b]0;pwned\x07\u202eLovelace",
        "account_enabled": True,
        "in_graph": True,
        "in_records": False,
        "error": None,
    }


async def test_graph_receives_each_key_as_one_percent_encoded_path_segment(
    world: World, e2e_ca: TestCA
) -> None:
    """What reached the server, read from the ASGI scope's raw path (the emulator's log holds the decoded
    path, in which `..%2F..%2Fgroups` and `../../groups` look alike)."""
    ada = world.graph.add_user(upn="ada@contoso.com")
    received: list[tuple[str, bytes, int]] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start" and scope["path"].startswith("/v1.0"):
                received.append((scope["path"], scope["raw_path"], message["status"]))
            await send(message)

        await world.graph.graph_app(scope, receive, sent)

    login = load_settings(world.config, {}).require_graph().authority_host
    served_graph = world.graph.graph_resource
    with serve_https(recording, ca=e2e_ca) as server:
        world.graph.graph_resource = server.base_url  # Graph is the recording server while it runs
        try:
            settings = GraphSettings.model_validate(
                {
                    "tenant_id": DEFAULT_TENANT_ID,
                    "client_id": DEFAULT_CLIENT_ID,
                    "client_secret": DEFAULT_CLIENT_SECRET,
                    "authority_host": login,
                    "base_url": f"{server.base_url}/v1.0",
                    "group_ids": [world.group],
                    "ca_bundle": str(server.ca_path),
                    "retry_delay_s": 0.0,
                }
            )
            async with GraphSource(settings) as source:
                for key in ["../../groups", "a/b?c#d@contoso.com"]:
                    # No such user: Graph answers 404 (None), the emulator 400 (it reads the decoded path).
                    with contextlib.suppress(GraphReadError):
                        assert await source.get_user(key) is None
                found = await source.get_user("ada@contoso.com")  # quoted once: a UPN still finds its user
                for key in ["..", ".", ""]:
                    with pytest.raises(GraphReadError, match="not an object ID Graph can address"):
                        await source.get_user(key)
                    with pytest.raises(GraphReadError, match="not an object ID Graph can address"):
                        await source.member_of(key)
                    with pytest.raises(GraphReadError, match="not an object ID Graph can address"):
                        await source.child_groups(key)
        finally:
            world.graph.graph_resource = served_graph
    assert found is not None
    assert found["id"] == ada
    # One segment each ("@" may go unencoded in a path): no such user, never the groups list; and nothing
    # was sent for "..", "." or "".
    assert [raw for _, raw, _ in received] == [
        b"/v1.0/users/..%2F..%2Fgroups",
        b"/v1.0/users/a%2Fb%3Fc%23d@contoso.com",
        b"/v1.0/users/ada@contoso.com",
    ]
    assert [status in (400, 404) for _, _, status in received] == [True, True, False]
