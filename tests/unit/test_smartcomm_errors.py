"""Classification of SmartCommunicator responses: every documented message, every status class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.smartcomm.errors import (
    BODY_LIMIT,
    MESSAGES,
    AgentConflict,
    AgentExists,
    AgentNotFound,
    AnchorExists,
    CustomerForbidden,
    ErrorCategory,
    NumberNotRegistered,
    ServiceUnavailable,
    TenantNotRegistered,
    Throttled,
    TokenRejected,
    UnexpectedResponse,
    classify,
    is_retryable_status,
    response_message,
)

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "smartcommunicator-agents-api.md"
TABLE_HEADER = "| endpoint | status | message |"
"""How the spec's table of every documented status and message starts; its message column holds the body's
`message` in backticks, or `-` when the body has none."""
NOT_CLASSIFIED_BY_MESSAGE = {
    "No Records found for any of the parameters provided",
    "Agent not found",
    "Onboarded Successfully",
}
"""The 404 messages (classified by status) and the success."""

# message -> (error type, category, identifier), written out by hand so the table in errors.py is checked.
EXPECTED = {
    "Azure Object ID already exists": (AgentExists, ErrorCategory.ALREADY_EXISTS, "user_object_id"),
    "Azure Object ID exists with a different MSDS Consistency GUID": (
        AgentExists,
        ErrorCategory.ALREADY_EXISTS,
        "user_object_id",
    ),
    "TN exists with the same Azure Object ID": (AgentExists, ErrorCategory.ALREADY_EXISTS, "phone_number"),
    "UPN exists with the same Azure Object ID": (AgentExists, ErrorCategory.ALREADY_EXISTS, "upn"),
    "MSDS Consistency GUID already exists": (AnchorExists, ErrorCategory.SAME_ANCHOR, "consistency_id"),
    "TN exists with the same MSDS Consistency GUID": (
        AnchorExists,
        ErrorCategory.SAME_ANCHOR,
        "phone_number",
    ),
    "UPN exists with the same MSDS Consistency GUID": (AnchorExists, ErrorCategory.SAME_ANCHOR, "upn"),
    "TN is already registered with a different MSDS Consistency GUID": (
        AgentConflict,
        ErrorCategory.CONFLICT,
        "phone_number",
    ),
    "TN is already registered with a different Azure Object ID": (
        AgentConflict,
        ErrorCategory.CONFLICT,
        "phone_number",
    ),
    "TN is already registered with a different UPN": (AgentConflict, ErrorCategory.CONFLICT, "phone_number"),
    "UPN is already registered with a different MSDS Consistency GUID": (
        AgentConflict,
        ErrorCategory.CONFLICT,
        "upn",
    ),
    "UPN is already registered with a different Azure Object ID": (
        AgentConflict,
        ErrorCategory.CONFLICT,
        "upn",
    ),
    "UPN is already registered with SmartCommunicator": (AgentConflict, ErrorCategory.CONFLICT, "upn"),
    "Tenant ID is not registered with SmartCommunicator": (
        TenantNotRegistered,
        ErrorCategory.SETUP,
        "tenant_id",
    ),
    "TN is not part of the list of numbers that are already 10DLC registered": (
        NumberNotRegistered,
        ErrorCategory.SETUP,
        "phone_number",
    ),
    "Phone number is not registered with SmartCommunicator": (
        NumberNotRegistered,
        ErrorCategory.SETUP,
        "phone_number",
    ),
    "Azure Object ID is not registered with SmartCommunicator": (
        AgentNotFound,
        ErrorCategory.NOT_FOUND,
        "user_object_id",
    ),
}


def documented_messages() -> set[str]:
    """Every message in the spec's status table(s): the rows under a header starting with TABLE_HEADER."""
    messages = set()
    in_table = False
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith(TABLE_HEADER):
            in_table = True
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not in_table or set("".join(cells)) <= set("-: "):  # another table, or the delimiter row
            continue
        message = cells[2]
        if len(message) > 2 and message.startswith("`") and message.endswith("`"):
            messages.add(message[1:-1])
    return messages


def spec_messages() -> set[str]:
    """Every message of the published spec but the 404s (classified by status) and the success."""
    return documented_messages() - NOT_CLASSIFIED_BY_MESSAGE


def test_the_table_covers_every_message_of_the_spec() -> None:
    assert documented_messages() >= NOT_CLASSIFIED_BY_MESSAGE
    assert spec_messages() == set(EXPECTED)
    assert {m.lower() for m in EXPECTED} == set(MESSAGES)


@pytest.mark.parametrize("message", sorted(EXPECTED))
@pytest.mark.parametrize("shape", ["onboarding", "update"])
def test_documented_400_messages(message: str, shape: str) -> None:
    error_type, category, field = EXPECTED[message]
    body = (
        {"message": message, "status": 400}
        if shape == "onboarding"
        else {"status": "error", "message": message}
    )
    error = classify(400, json.dumps(body).encode(), method="POST", path="/rest/v1/smartcomm/1/agents")
    assert type(error) is error_type
    assert error.category is category
    assert error.field == field
    assert error.status == 400
    assert error.message == message
    assert str(error) == f"POST /rest/v1/smartcomm/1/agents -> 400: {message}"


@pytest.mark.parametrize(
    ("status", "body", "error_type", "category"),
    [
        (
            404,
            {"requestId": "r", "message": "No Records found for any of the parameters provided"},
            AgentNotFound,
            ErrorCategory.NOT_FOUND,
        ),
        (404, {"requestId": "r", "message": "Agent not found"}, AgentNotFound, ErrorCategory.NOT_FOUND),
        (404, {}, UnexpectedResponse, ErrorCategory.UNEXPECTED),
        (401, {"code": 401, "error": "Unauthorized"}, TokenRejected, ErrorCategory.AUTH),
        (403, {"code": 403, "error": "Forbidden"}, CustomerForbidden, ErrorCategory.AUTH),
        (429, {}, Throttled, ErrorCategory.THROTTLED),
        (503, {"message": "Service Unavailable"}, ServiceUnavailable, ErrorCategory.UNAVAILABLE),
        (500, {}, ServiceUnavailable, ErrorCategory.UNAVAILABLE),
        (400, {"message": "Something new", "status": 400}, UnexpectedResponse, ErrorCategory.UNEXPECTED),
        (409, {"message": "Azure Object ID already exists"}, AgentExists, ErrorCategory.ALREADY_EXISTS),
        (418, {}, UnexpectedResponse, ErrorCategory.UNEXPECTED),
    ],
)
def test_status_classes(
    status: int, body: dict[str, object], error_type: type, category: ErrorCategory
) -> None:
    error = classify(status, json.dumps(body).encode())
    assert type(error) is error_type
    assert error.category is category
    assert error.status == status


def test_messages_match_whatever_the_case_and_spacing() -> None:
    error = classify(400, b'{"message": "  azure object id ALREADY exists ", "status": 400}')
    assert isinstance(error, AgentExists)


def test_unknown_errors_keep_status_and_a_truncated_body() -> None:
    page = "<html>" + "x" * 5000 + "</html>"
    error = classify(400, page.encode())
    assert isinstance(error, UnexpectedResponse)
    assert error.status == 400
    assert error.body.startswith("<html>xxx")
    assert len(error.body) < BODY_LIMIT + 40
    assert error.body.endswith("more characters]")


def test_throttled_keeps_retry_after_and_unknown_outcome() -> None:
    error = classify(429, b"", retry_after_s=7.0, attempts=5, outcome_was_unknown=True)
    assert isinstance(error, Throttled)
    assert (error.retry_after_s, error.attempts, error.outcome_was_unknown) == (7.0, 5, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"message": "m", "status": 400}', "m"),
        (b'{"status": "error", "message": "m"}', "m"),
        (b'{"code": 401, "error": "Unauthorized"}', "Unauthorized"),
        (b"[1, 2]", ""),
        (b"not json", ""),
        (b"\xff\xfe", ""),
        (b'{"message": 42}', ""),
    ],
)
def test_response_message_reads_every_shape(body: bytes, message: str) -> None:
    assert response_message(body) == message


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
        (400, False),
        (404, False),
        (401, False),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry
