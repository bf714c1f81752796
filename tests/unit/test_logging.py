"""Secret redaction in structlog output."""

from __future__ import annotations

import io
import json

import structlog

from syncd.config.logs import REDACTED, configure_logging, redact_secrets, redact_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOiJ4IiwiZXhwIjoxfQ.c2lnbmF0dXJlLXZhbHVl"


def test_secret_keys_are_masked_at_any_depth() -> None:
    event = redact_secrets(
        None,
        "info",
        {
            "event": "x",
            "password": "hunter2",
            "client_secret": "s3",
            "Authorization": "Bearer abc",
            "nested": {"token": "t", "ok": "visible"},
            "items": [{"passphrase": "p"}],
            "token_file": "",
        },
    )
    assert event["password"] == event["client_secret"] == event["Authorization"] == REDACTED
    assert event["nested"] == {"token": REDACTED, "ok": "visible"}
    assert event["items"] == [{"passphrase": REDACTED}]
    assert event["token_file"] == ""  # nothing to hide, and saying so helps debugging


def test_tokens_inside_free_text_are_masked() -> None:
    assert redact_text(f"failed with {JWT} in it") == f"failed with {REDACTED} in it"
    assert redact_text("header was Bearer abcdefghijklmnop") == f"header was Bearer {REDACTED}"
    assert redact_text("no secret here: +14155550100") == "no secret here: +14155550100"


def test_configured_output_is_json_lines_without_secrets() -> None:
    out = io.StringIO()
    configure_logging(level="debug", json=True, stream=out)
    try:
        structlog.get_logger("t").warning("retry", password="hunter2", error=f"got {JWT}", attempt=2)
        structlog.get_logger("t").debug("shown at debug")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "retry"
    assert lines[0]["password"] == REDACTED
    assert lines[0]["attempt"] == 2
    assert "hunter2" not in out.getvalue()
    assert JWT not in out.getvalue()
    assert lines[1]["event"] == "shown at debug"


def test_level_filters_events() -> None:
    out = io.StringIO()
    configure_logging(level="warning", json=True, stream=out)
    try:
        structlog.get_logger("t").info("hidden")
        structlog.get_logger("t").warning("shown")
    finally:
        structlog.reset_defaults()
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["shown"]
