"""The per-person value types (`syncd.core.model.value_type`): compared and hashed by their fields, slotted,
copied with `dataclasses.replace`, and frozen to the type checker (mypy strict refuses an assignment to a
field, which is what keeps them immutable now that the run-time check is gone)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.core.model import Agent, AgentFields, Member, MemberStatus, Recorded, Skipped, SkipReason

VALUES = [
    Member("id-1", "tenant", "a@x.test", "+14155550100", "guid", "businessPhones"),
    Skipped("id-2", "b@x.test", SkipReason.NO_PHONE, "no number"),
    Agent("id-1", "tenant", "+14155550100", "active", None, "guid"),
    AgentFields("tenant", "+14155550100", "a@x.test", None),
    Recorded("id-1", MemberStatus.ACTIVE, AgentFields("tenant", "+1", None, None), "a@x.test", attempts=2),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_equal_and_hashed_by_fields(value: object) -> None:
    twin = dataclasses.replace(value)  # type: ignore[type-var]
    assert twin is not value
    assert twin == value
    assert hash(twin) == hash(value)
    assert len({value, twin}) == 1
    assert not hasattr(value, "__dict__")  # slotted: a cycle holds several per person


def test_replace_changes_one_field_only() -> None:
    agent = VALUES[2]
    assert isinstance(agent, Agent)
    moved = dataclasses.replace(agent, status="offboarded")
    assert (moved.status, moved.user_object_id, agent.status) == ("offboarded", "id-1", "active")
    assert moved != agent


def test_mypy_refuses_assigning_a_field(tmp_path: Path) -> None:
    sample = tmp_path / "assign.py"
    sample.write_text(
        "from syncd.core.model import Agent, Member, Recorded, MemberStatus\n"
        "member = Member('a', 't', None, '+1', None)\n"
        "member.phone_number = '+2'\n"
        "agent = Agent('a', 't', '+1', 'active')\n"
        "agent.status = 'offboarded'\n"
        "record = Recorded('a', MemberStatus.ACTIVE)\n"
        "record.attempts = 3\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(sample)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for line, field in ((3, "phone_number"), (5, "status"), (7, "attempts")):
        assert f'assign.py:{line}: error: Property "{field}"' in result.stdout, result.stdout
        assert "is read-only" in result.stdout
