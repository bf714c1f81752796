"""The audit log's line (`syncd.service.audit.audit_line`): its fields are an interface a SIEM depends on, so
this pins them, for each action, and the `notify.audit_log` setting's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config.loader import ConfigError, load_settings
from syncd.core.model import Action, AgentFields, Outcome
from syncd.service.admin_auth import describe_requester
from syncd.service.audit import AUDIT_SCHEMA, audit_line
from syncd.store.records import AuditEntry, OperationRecord

TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
OID = "0b6c3c8e-5d3c-4a43-9c55-3b0f9d3c7a11"
BEFORE = AgentFields(TENANT, "+14155550001", "ada@contoso.com", "guid-1")
AFTER = AgentFields(TENANT, "+14155550101", "ada@contoso.com", "guid-1")


def entry(
    action: Action, outcome: Outcome, desired: AgentFields | None, believed: AgentFields | None
) -> AuditEntry:
    operation = OperationRecord(
        id=7,
        run_id=3,
        object_id=OID,
        action=action,
        outcome=outcome,
        http_status=400 if outcome is Outcome.FAILED else None,
        error="TN is not 10DLC registered" if outcome is Outcome.FAILED else None,
        desired=desired,
        believed=believed,
        created_at=1_796_601_600.0,
        settled_at=1_796_601_601.4,
    )
    return AuditEntry(operation, "ada@contoso.com", "manual", "bearer token from 10.0.0.7")


def test_the_fields_of_an_update_are_pinned() -> None:
    assert audit_line(entry(Action.UPDATE, Outcome.OK, AFTER, BEFORE)) == {
        "schema": AUDIT_SCHEMA,
        "time": "2026-12-07T00:00:01Z",
        "operation_id": 7,
        "run_id": 3,
        "trigger": "manual",
        "requested_by": "bearer token from 10.0.0.7",
        "action": "update",
        "object_id": OID,
        "from_object_id": None,
        "upn": "ada@contoso.com",
        "outcome": "ok",
        "http_status": None,
        "error": None,
        "changes": {"phone_number": {"before": "+14155550001", "after": "+14155550101"}},
    }
    assert AUDIT_SCHEMA == "syncd.audit.v1"


def test_an_onboarding_has_no_before_and_an_offboarding_no_after() -> None:
    onboard = audit_line(entry(Action.ONBOARD, Outcome.FAILED, AFTER, None))
    assert onboard["changes"] == {
        "phone_number": {"before": None, "after": "+14155550101"},
        "upn": {"before": None, "after": "ada@contoso.com"},
        "consistency_id": {"before": None, "after": "guid-1"},
        "tenant_id": {"before": None, "after": TENANT},
    }
    assert (onboard["outcome"], onboard["http_status"], onboard["error"]) == (
        "failed",
        400,
        "TN is not 10DLC registered",
    )
    offboard = audit_line(entry(Action.OFFBOARD, Outcome.ALREADY_GONE, None, BEFORE))
    assert offboard["changes"]["phone_number"] == {"before": "+14155550001", "after": None}
    assert (offboard["action"], offboard["outcome"], offboard["upn"]) == (
        "offboard",
        "already_gone",
        "ada@contoso.com",
    )


def test_the_upn_falls_back_to_the_members_record() -> None:
    fields = AgentFields(TENANT, "+14155550001", None, None)
    assert audit_line(entry(Action.OFFBOARD, Outcome.OK, None, fields))["upn"] == "ada@contoso.com"


@pytest.mark.parametrize("value", ["", "stdout", "stderr"])
def test_the_named_targets(value: str) -> None:
    assert load_settings(None, {"SYNCD_NOTIFY__AUDIT_LOG": value}).notify.audit_log == value


def test_a_file_in_an_existing_folder(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.jsonl")
    assert load_settings(None, {"SYNCD_NOTIFY__AUDIT_LOG": path}).notify.audit_log == path


@pytest.mark.parametrize("name", ["missing/audit.jsonl", "."])
def test_a_bad_target_names_the_key(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"SYNCD_NOTIFY__AUDIT_LOG": str(tmp_path / name)})
    assert "notify.audit_log" in str(caught.value)


def test_who_asked_for_a_manual_cycle() -> None:
    assert describe_requester("bearer token", "10.0.0.7") == "bearer token from 10.0.0.7"
    assert describe_requester("status page session", None) == "status page session from an unknown address"
    forwarded = describe_requester("bearer token", "10.0.0.8", "https://replica-2:8080\x1b[31m")
    assert (
        forwarded == "bearer token from 10.0.0.8 (forwarded by the standby https://replica-2:8080\\x1b[31m)"
    )
    assert len(describe_requester("bearer token", "x" * 500)) == 200
