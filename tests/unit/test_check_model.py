"""`syncd check`'s pure parts: the report (exit code, checklist text, JSON), the permissions syncd needs, the
token's roles, the schema verdict and the configuration failures, which stop the checks before any remote is
asked anything."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest

from syncd.graph.probe import token_claims, token_roles
from syncd.service.check import check_configuration
from syncd.service.check.fixes import config_fix, grant, missing_permissions
from syncd.service.check.local_checks import schema_check
from syncd.service.check.model import Report, Status, fail, ok, skip, warn
from syncd.store.schema import SchemaState


def sample_report() -> Report:
    return Report(
        [
            ok("config", "configuration", "valid"),
            warn("entra_token", "Entra token", "roles: A", "grant B", roles=["A"]),
            fail("group", "group", "g1 does not exist", "correct graph.group_ids", group_id="g1"),
            skip("teams_numbers", "Teams numbers", "teams is not in graph.phone_source"),
        ],
        config_file="/config/syncd.toml",
    )


def test_the_exit_code_is_2_only_when_a_check_failed() -> None:
    report = sample_report()
    assert report.exit_code == 2
    passing = Report([c for c in report.checks if c.status is not Status.FAIL])
    assert passing.exit_code == 0
    assert Report([]).exit_code == 0


def test_the_checklist_has_one_line_per_check_and_the_fix_below() -> None:
    assert sample_report().render_text().splitlines() == [
        "syncd check: configuration from /config/syncd.toml",
        "",
        "ok    configuration  valid",
        "warn  Entra token    roles: A",
        "                     fix: grant B",
        "FAIL  group          g1 does not exist",
        "                     fix: correct graph.group_ids",
        "skip  Teams numbers  teams is not in graph.phone_source",
        "",
        "1 check failed (1 ok, 1 warning, 1 skipped): fix what FAIL says, then run syncd check again.",
    ]
    passing = Report([ok("config", "configuration", "valid")]).render_text().splitlines()
    assert passing[0] == "syncd check: configuration from the environment only (no config file)"
    assert passing[-1] == "No check failed (1 ok, 0 warnings, 0 skipped)."


def test_the_json_document() -> None:
    document = sample_report().to_json()
    assert json.loads(json.dumps(document)) == document
    assert document["ok"] is False
    assert document["exit_code"] == 2
    assert document["counts"] == {"ok": 1, "fail": 1, "warn": 1, "skip": 1}
    assert document["checks"][2] == {
        "name": "group",
        "title": "group",
        "status": "fail",
        "detail": "g1 does not exist",
        "fix": "correct graph.group_ids",
        "data": {"group_id": "g1"},
    }
    assert document["checks"][0]["fix"] is None


@pytest.mark.parametrize(
    ("roles", "uses_teams", "missing"),
    [
        (["GroupMember.Read.All", "User.Read.All"], False, []),
        (["GroupMember.Read.All", "User.Read.All"], True, ["TeamsTelephoneNumber.Read.All"]),
        (["Directory.Read.All"], False, []),  # grants both
        (["Group.Read.All"], False, ["User.Read.All"]),
        (["User.ReadWrite.All", "TeamsTelephoneNumber.ReadWrite.All"], True, ["GroupMember.Read.All"]),
        ([], True, ["GroupMember.Read.All", "User.Read.All", "TeamsTelephoneNumber.Read.All"]),
    ],
)
def test_the_permissions_syncd_needs(roles: list[str], uses_teams: bool, missing: list[str]) -> None:
    assert missing_permissions(roles, uses_teams=uses_teams) == missing


def test_a_grant_names_every_permission_and_admin_consent() -> None:
    assert grant(["User.Read.All"]).endswith(
        "application permission User.Read.All and select Grant admin consent"
    )
    both = grant(["GroupMember.Read.All", "User.Read.All"], otherwise="or else")
    assert (
        "application permissions GroupMember.Read.All and User.Read.All and select Grant admin consent"
        in both
    )
    assert both.endswith(", or else")


def jwt(claims: dict[str, object]) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.signature"


def test_the_roles_of_a_token() -> None:
    assert token_roles(token_claims(jwt({"roles": ["User.Read.All", "GroupMember.Read.All"]}))) == [
        "GroupMember.Read.All",
        "User.Read.All",
    ]
    assert token_roles(token_claims(jwt({"appid": "x"}))) == []  # no role granted: no claim
    assert token_roles({"roles": "User.Read.All"}) == []
    assert token_claims("not a token") == {}
    assert token_claims("a.!!!.c") == {}
    assert token_claims(jwt(["a list"])) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "status", "detail"),
    [
        (
            SchemaState((), "b2", tables=False, newer=()),
            Status.OK,
            "empty: the first start creates the tables",
        ),
        (SchemaState(("b2",), "b2", tables=True, newer=()), Status.OK, "at revision b2, this syncd's"),
        (
            SchemaState(("a1",), "b2", tables=True, newer=()),
            Status.WARN,
            "at revision a1, this syncd's is b2",
        ),
        (
            SchemaState(("z9",), "b2", tables=True, newer=("z9",)),
            Status.FAIL,
            "at revision z9, which a newer",
        ),
    ],
)
def test_the_schema_verdict(state: SchemaState, status: Status, detail: str) -> None:
    check = schema_check(state)
    assert check.status is status
    assert check.detail.startswith(detail)
    assert bool(check.fix) == (status is not Status.OK)


def test_a_configuration_error_fails_first_and_checks_nothing_else(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[sync]\nintervall = "1m"\nmax_offboard = "25"\n', encoding="utf-8")
    token = "token-never-shown-" + "x" * 32
    report = check_configuration(config, {"SYNCD_ADMIN__TOKEN": token})
    assert [check.name for check in report.checks] == ["config", "config"]
    assert all(check.status is Status.FAIL for check in report.checks)
    assert report.checks[0].detail.startswith("sync.intervall: unknown key (did you mean sync.interval?)")
    assert report.checks[0].fix == (
        "correct sync.intervall as the message says (in the config file's [sync] section, or "
        "SYNCD_SYNC__INTERVALL)"
    )
    assert report.checks[1].data == {"key": "sync.max_offboard"}
    assert report.exit_code == 2
    assert token not in report.render_text() + json.dumps(report.to_json())


def test_missing_sections_fail_and_the_local_checks_still_run(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        "SYNCD_DATABASE__URL": f"sqlite:///{tmp_path / 'syncd.db'}",
        "SYNCD_ADMIN__LISTEN": f"127.0.0.1:{port}",
    }
    report = check_configuration(None, env)
    statuses = [(check.name, check.status) for check in report.checks]
    assert statuses[:5] == [
        ("config", Status.OK),
        ("config", Status.FAIL),
        ("config", Status.FAIL),
        ("entra_token", Status.SKIP),
        ("smartcomm_auth", Status.SKIP),
    ]
    assert report.checks[1].detail == "missing section [graph]"
    assert report.checks[2].fix.startswith("add a [smartcomm] section")
    assert report.checks[0].detail == "valid (2 SYNCD_ variables)"
    assert ("database", Status.OK) in statuses
    assert report.config_file is None


def test_config_fix_names_the_variable_too() -> None:
    assert config_fix("graph.tenant_id").endswith(
        "(in the config file's [graph] section, or SYNCD_GRAPH__TENANT_ID)"
    )
    assert config_fix("graph") == "correct the section [graph] as the message says"
    assert config_fix("").startswith(
        "correct the config file, or the path that --config or SYNCD_CONFIG gives"
    )
