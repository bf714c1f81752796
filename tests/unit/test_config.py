"""Validation of the typed SmartCommunicator settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from syncd.config.settings import GraphSettings, NotifySettings, SmartCommSettings

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
    trustme.CA().cert_pem.write_to_path(str(pem))
    settings = SmartCommSettings.model_validate(
        BASE | {"base_url": "https://127.0.0.1:8443/", "ca_bundle": str(pem)}
    )
    assert settings.base_url == "https://127.0.0.1:8443"
    assert settings.ca_bundle == str(pem)


TENANT = "8c0a6f64-0e7d-4b1e-9a55-4d0c8bb6a1f0"
CLIENT = "3f6b1d2e-5a4c-4e7b-9c1d-2b8f0a6e4d31"
GROUP = "0b5c1f5e-2a36-4d3c-9a6a-3c2a1c2b0d11"
GRAPH = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": "s", "group_ids": [GROUP]}


def test_graph_defaults_and_normalisation() -> None:
    settings = GraphSettings.model_validate(
        GRAPH
        | {
            "tenant_id": TENANT.upper(),
            "group_ids": [GROUP, GROUP.upper()],
            "default_region": "gb",
            "phone_attribute": "extensionattribute7",
        }
    )
    assert settings.tenant_id == TENANT
    assert settings.group_ids == [GROUP]
    assert settings.default_region == "GB"
    assert settings.phone_attribute == "onPremisesExtensionAttributes.extensionAttribute7"
    assert settings.graph_origin == "https://graph.microsoft.com"
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert "s" not in repr(settings.client_secret)


def test_the_default_region_needs_no_check_because_phonenumbers_supports_it() -> None:
    """`default_region` equal to the default is accepted without loading phonenumbers' region list (its
    validator's shortcut), which is sound only while phonenumbers supports that region."""
    import phonenumbers

    from syncd.config.remotes import DEFAULT_REGION

    assert DEFAULT_REGION in phonenumbers.SUPPORTED_REGIONS
    assert GraphSettings.model_validate(GRAPH | {"default_region": " us "}).default_region == DEFAULT_REGION


def test_sovereign_cloud_by_configuration() -> None:
    settings = GraphSettings.model_validate(
        GRAPH
        | {
            "authority_host": "https://login.microsoftonline.us",
            "base_url": "https://graph.microsoft.us/v1.0/",
        }
    )
    assert settings.base_url == "https://graph.microsoft.us/v1.0"
    assert settings.graph_origin == "https://graph.microsoft.us"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"tenant_id": "contoso.onmicrosoft.com"}, "tenant_id"),
        ({"client_id": ""}, "client_id"),
        ({"group_ids": []}, "group_ids"),
        ({"group_ids": ["Sales"]}, "group_ids"),
        ({"phone_attribute": "homePhone"}, "phone_attribute"),
        ({"default_region": "USA"}, "default_region"),
        ({"authority_host": "http://login.microsoftonline.com"}, "authority_host"),
        ({"authority_host": "https://login.microsoftonline.com/tenant"}, "authority_host"),
        ({"base_url": "graph.microsoft.com"}, "base_url"),
        ({"page_size": 1000}, "page_size"),
        ({"certificate_path": "/nonexistent.pem"}, "certificate_path"),
    ],
)
def test_invalid_graph_values_name_their_key(override: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        GraphSettings.model_validate(GRAPH | override)
    assert [error["loc"] for error in caught.value.errors()] == [(key,)]


@pytest.mark.parametrize("credentials", [{}, {"client_secret": ""}, {"certificate_path": "CERT"}])
def test_exactly_one_graph_credential(credentials: dict[str, str], tmp_path: Path) -> None:
    cert = tmp_path / "app.pem"
    leaf = trustme.CA().issue_cert("syncd-app.example.com", key_type=trustme.KeyType.RSA)
    cert.write_bytes(leaf.private_key_and_cert_chain_pem.bytes())
    values = {k: v for k, v in GRAPH.items() if k != "client_secret"}
    values |= {k: str(cert) if v == "CERT" else v for k, v in credentials.items()}
    if credentials.get("certificate_path"):
        values["client_secret"] = "s"
    with pytest.raises(ValidationError, match="exactly one of client_secret or certificate_path"):
        GraphSettings.model_validate(values)


@pytest.mark.parametrize(
    ("values", "key", "fragment"),
    [
        ({"webhook_url": "http://hooks.example.com/secret-path"}, "webhook_url", "must be https"),
        ({"webhook_url": "ftp://hooks.example.com/secret-path"}, "webhook_url", "must be an https:// URL"),
        ({"format": "slack"}, "format", "must be one of teams, json"),
        ({"daily_summary_at": "8am"}, "daily_summary_at", "HH:MM"),
        ({"daily_summary_at": "24:00"}, "daily_summary_at", "HH:MM"),
        ({"max_attempts": 0}, "max_attempts", ""),
    ],
)
def test_notify_settings_name_their_key_and_never_quote_the_url(
    values: dict[str, object], key: str, fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        NotifySettings.model_validate(values)
    [error] = caught.value.errors(include_input=False)
    assert error["loc"] == (key,)
    assert fragment in error["msg"]
    assert "secret-path" not in str(error)


def test_notify_settings_accept_https_and_loopback_http() -> None:
    assert not NotifySettings().enabled
    https = NotifySettings.model_validate({"webhook_url": " https://x.webhook.office.com/a/b "})
    assert https.enabled
    assert https.webhook_url is not None
    assert https.webhook_url.get_secret_value() == "https://x.webhook.office.com/a/b"
    assert "webhook.office" not in repr(https)
    assert NotifySettings.model_validate({"webhook_url": "http://127.0.0.1:9999/hook"}).enabled
