"""Validation of the typed SmartCommunicator settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from syncd.config import SmartCommSettings

BASE = {"customer_id": 12345, "username": "api@example.com", "password": "pw"}


def test_defaults_and_secret_hiding() -> None:
    settings = SmartCommSettings.model_validate(BASE)
    assert settings.base_url == "https://atmosphere-api.intelepeer.com"
    assert settings.password.get_secret_value() == "pw"
    assert "pw" not in repr(settings)
    assert "pw" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"base_url": "http://atmosphere-api.intelepeer.com"}, "base_url"),
        ({"base_url": "https://host/rest/v1"}, "base_url"),
        ({"customer_id": 0}, "customer_id"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"username": ""}, "username"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_invalid_values_name_their_key(override: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SmartCommSettings.model_validate(BASE | override)
    assert [error["loc"] for error in caught.value.errors()] == [(key,)]


def test_base_url_trailing_slash_is_dropped_and_ca_bundle_must_exist(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = SmartCommSettings.model_validate(
        BASE | {"base_url": "https://127.0.0.1:8443/", "ca_bundle": str(pem)}
    )
    assert settings.base_url == "https://127.0.0.1:8443"
    assert settings.ca_bundle == str(pem)
