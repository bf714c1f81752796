"""The pure Graph user -> Member mapping: phone normalisation, consistency GUIDs, record shapes, scope."""

from __future__ import annotations

import base64
import re
import uuid

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.core.model import Member, Skipped, SkipReason
from syncd.core.scope_filter import parse_filter
from syncd.graph.mapping import (
    PHONE_ATTRIBUTES,
    decode_consistency_guid,
    is_valid,
    map_user,
    parse_phone_attribute,
    raw_phone,
    select_fields,
    to_e164,
)

SUPPRESSED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
"""Health checks these property tests do without (too_slow: a timing check; see tests/conftest.py)."""

TENANT = "11111111-2222-3333-4444-555555555555"
OBJECT_ID = "0b9e3d6a-7c4f-4a8e-9d2b-1f6e5c4b3a29"
EXT7 = "onPremisesExtensionAttributes.extensionAttribute7"


def user(**fields: object) -> dict[str, object]:
    """A typical Graph user object, with `fields` replacing or (value `...`) removing keys (odata_type is
    "@odata.type")."""
    record: dict[str, object] = {
        "id": OBJECT_ID,
        "userPrincipalName": "ada@contoso.com",
        "accountEnabled": True,
        "businessPhones": ["+1 415 555 0123"],
        "mobilePhone": None,
        "onPremisesImmutableId": "1wfM9xV8fUSHbcAbDlqeOA==",
    }
    for key, value in fields.items():
        key = "@odata.type" if key == "odata_type" else key
        if value is ...:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def mapped(record: object, phone_attribute: str = "businessPhones", region: str = "US") -> Member | Skipped:
    return map_user(record, tenant_id=TENANT, phone_sources=phone_attribute, default_region=region)


# --- phone numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        pytest.param("(415) 555-0123", "US", "+14155550123", id="us-national"),
        pytest.param("1-415-555-0123", "US", "+14155550123", id="us-national-with-trunk-1"),
        pytest.param("+1.415.555.0123", "US", "+14155550123", id="us-dots"),
        pytest.param("+1 (415) 555-0123", "US", "+14155550123", id="us-parentheses"),
        pytest.param("+44 20 7946 0958", "US", "+442079460958", id="gb-international"),
        pytest.param("020 7946 0958", "GB", "+442079460958", id="gb-national"),
        pytest.param("+44 (0)20 7946 0958", "US", "+442079460958", id="gb-bracketed-trunk-0"),
        pytest.param("+49 30 901820", "US", "+4930901820", id="de"),
        pytest.param("030/901820", "DE", "+4930901820", id="de-national-din-slash"),
        pytest.param("+49 30 901820-0", "DE", "+49309018200", id="de-dash-direct-dial"),
        pytest.param("+33 1 42 68 53 00", "US", "+33142685300", id="fr"),
        pytest.param("+81 3-1234-5678", "US", "+81312345678", id="jp"),
        pytest.param("+61 2 9374 4000", "US", "+61293744000", id="au"),
        pytest.param("+91 98765 43210", "US", "+919876543210", id="in-mobile"),
        pytest.param("98765 43210", "IN", "+919876543210", id="in-mobile-national"),
        pytest.param("+1 415 555 0123", "GB", "+14155550123", id="plus-ignores-region"),
        pytest.param("  +1 415 555 0123\t\n", "US", "+14155550123", id="surrounding-whitespace"),
        pytest.param("+1\u00a0415\u00a0555\u00a00123", "US", "+14155550123", id="no-break-spaces"),
        pytest.param("+1\u2009415\u2009555\u20090123", "US", "+14155550123", id="thin-spaces"),
        pytest.param("+1\u202f415\u2007555\u30000123", "US", "+14155550123", id="narrow-figure-ideographic"),
        pytest.param("\u200e+1 415\u200b 555 0123\u200f", "US", "+14155550123", id="bidi-and-zero-width"),
        pytest.param("tel:+1-415-555-0123", "US", "+14155550123", id="tel-uri"),
        pytest.param("TEL: +1 415 555 0123", "US", "+14155550123", id="tel-prefix-upper"),
        pytest.param(
            "\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff10\uff11\uff12\uff13",
            "US",
            "+14155550123",
            id="full-width",
        ),
        pytest.param(
            "+\u0661 \u0664\u0661\u0665 \u0665\u0665\u0665 \u0660\u0661\u0662\u0663",
            "US",
            "+14155550123",
            id="arabic-indic-digits",
        ),
    ],
)
def test_to_e164_accepts(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        pytest.param("+1 415 555 0123 x123", "US", "has an extension", id="ext-x"),
        pytest.param("+1 415 555 0123 x 123", "US", "has an extension", id="ext-x-space"),
        pytest.param("+1 415 555 0123 ext. 12", "US", "has an extension", id="ext-dot"),
        pytest.param("+1 415 555 0123 ext12", "US", "has an extension", id="ext-glued"),
        pytest.param("+1 415 555 0123 extension 12", "US", "has an extension", id="ext-word"),
        pytest.param("+1 415 555 0123;ext=12", "US", "has an extension", id="ext-rfc3966"),
        pytest.param("tel:+1-415-555-0123;ext=5", "US", "has an extension", id="ext-tel-uri"),
        pytest.param("+1 415 555 0123 #12", "US", "has an extension", id="ext-hash"),
        pytest.param("+1 415 555 0123,,12", "US", "has an extension", id="ext-dial-pause"),
        pytest.param("1-800-FLOWERS", "US", "letters", id="vanity"),
        pytest.param("+1 800 FLOWERS", "US", "letters", id="vanity-international"),
        pytest.param("Mobile: +1 415 555 0123", "US", "letters", id="label-before"),
        pytest.param("+1 415 555 0123 (work)", "US", "letters", id="label-after"),
        pytest.param("+1 415 555 0123 x", "US", "letters", id="dangling-x"),
        pytest.param("+1 415 555 0100 / +1 415 555 0101", "US", "more than one number", id="two-slash"),
        pytest.param("+1 415 555 0100 +1 415 555 0101", "US", "more than one number", id="two-space"),
        pytest.param("+1 415 555 0100; +1 415 555 0101", "US", "more than one number", id="two-semicolon"),
        pytest.param("+1 415 555 0100\n+1 415 555 0101", "US", "more than one number", id="two-lines"),
        pytest.param("+1 415 555 0100 / 0101", "US", "more than one number", id="alternative-ending"),
        pytest.param(
            "+49 30 901820 / 21", "DE", "more than one number", id="alternative-ending-valid-concat"
        ),
        pytest.param("+1 415 555 0100 & 0101", "US", "more than one number", id="ampersand"),
        pytest.param("n/a", "US", "not a phone number", id="n/a"),
        pytest.param("TBD", "US", "not a phone number", id="tbd"),
        pytest.param("0", "US", "not a phone number", id="zero"),
        pytest.param("+", "US", "not a phone number", id="plus"),
        pytest.param("++1", "US", "not a phone number", id="plus-plus-1"),
        pytest.param("-", "US", "not a phone number", id="dash"),
        pytest.param("555-0123", "US", "not a valid number (read with region US)", id="no-area-code"),
        pytest.param("+44 7700 900123", "US", "not a valid number", id="gb-drama-range"),
        pytest.param("+1 415 555 01000101", "US", "not a valid number", id="too-many-digits"),
        pytest.param("415 555 0123", "XX", "region 'XX' is unknown", id="unknown-region"),
        pytest.param("tel:", "US", "blank", id="bare-tel"),
        pytest.param("\u2009\u00a0", "US", "blank", id="unicode-blank"),
        pytest.param("1" * 10_000, "US", "too long", id="10k-digits"),
        pytest.param("x" * 10_000, "US", "too long", id="10k-letters"),
        pytest.param("\u0661" * 10_000, "US", "too long", id="10k-non-ascii"),
        pytest.param("+" + "1" * 251, "US", "too long", id="252-chars"),
    ],
)
def test_to_e164_rejects(raw: str, region: str, why: str) -> None:
    result = to_e164(raw, region)
    assert isinstance(result, tuple)
    reason, detail = result
    assert reason is SkipReason.INVALID_PHONE
    assert why in detail
    assert repr(raw)[:20] in detail  # the raw value is quoted (it is not a secret)
    assert len(detail) < 120  # short, even for 10,000 characters


@pytest.mark.parametrize("raw", ["1" * 10_000, "x" * 10_000, "+1 " + "5" * 9_997, "\u0661" * 10_000])
def test_very_long_values_are_refused_before_parsing(raw: str) -> None:
    # The length check comes first, so a huge value never reaches phonenumbers (no timing needed to know it).
    result = to_e164(raw, "US")
    assert isinstance(result, tuple)
    reason, detail = result
    assert reason is SkipReason.INVALID_PHONE
    assert "is too long" in detail


# --- where the phone lives -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "attribute", "expected"),
    [
        pytest.param({"businessPhones": ["+1 415 555 0123"]}, "businessPhones", "+1 415 555 0123", id="bp"),
        pytest.param({"businessPhones": [" +1 415 "]}, "businessPhones", " +1 415 ", id="bp-as-given"),
        pytest.param({"businessPhones": []}, "businessPhones", None, id="bp-empty-list"),
        pytest.param(
            {"businessPhones": ["", "  ", "+44 20"]}, "businessPhones", "+44 20", id="bp-first-non-blank"
        ),
        pytest.param({"businessPhones": ["\u00a0", "\t"]}, "businessPhones", None, id="bp-only-blanks"),
        pytest.param(
            {"businessPhones": [None, 5, "+44 20"]}, "businessPhones", "+44 20", id="bp-skips-non-text"
        ),
        pytest.param({"businessPhones": "+1 415 555 0123"}, "businessPhones", None, id="bp-as-string"),
        pytest.param({"businessPhones": [4155550123]}, "businessPhones", None, id="bp-list-of-ints"),
        pytest.param({"businessPhones": None}, "businessPhones", None, id="bp-null"),
        pytest.param({}, "businessPhones", None, id="bp-absent"),
        pytest.param({"mobilePhone": "+1 415 555 0123"}, "mobilePhone", "+1 415 555 0123", id="mobile"),
        pytest.param({"mobilePhone": 4155550123}, "mobilePhone", None, id="mobile-int"),
        pytest.param({"mobilePhone": ["+1 415"]}, "mobilePhone", None, id="mobile-list"),
        pytest.param({"mobilePhone": "   "}, "mobilePhone", None, id="mobile-whitespace"),
        pytest.param({"mobilePhone": ""}, "mobilePhone", None, id="mobile-empty"),
        pytest.param({"mobilePhone": None, "businessPhones": ["+1"]}, "mobilePhone", None, id="mobile-null"),
        pytest.param(
            {"onPremisesExtensionAttributes": {"extensionAttribute7": "+1 415"}},
            EXT7,
            "+1 415",
            id="ext-present",
        ),
        pytest.param(
            {"onPremisesExtensionAttributes": {"extensionAttribute7": "+1 415"}},
            "extensionAttribute7",
            "+1 415",
            id="ext-short-form",
        ),
        pytest.param(
            {"onPremisesExtensionAttributes": {"extensionAttribute1": "+1 415"}},
            EXT7,
            None,
            id="ext-other-one-set",
        ),
        pytest.param(
            {"onPremisesExtensionAttributes": {"extensionAttribute7": None}}, EXT7, None, id="ext-null"
        ),
        pytest.param({"onPremisesExtensionAttributes": {"extensionAttribute7": 5}}, EXT7, None, id="ext-int"),
        pytest.param({"onPremisesExtensionAttributes": None}, EXT7, None, id="ext-object-null"),
        pytest.param({"onPremisesExtensionAttributes": ["+1 415"]}, EXT7, None, id="ext-object-list"),
        pytest.param({"extensionAttribute7": "+1 415"}, EXT7, None, id="ext-at-top-level-is-not-it"),
        pytest.param({}, EXT7, None, id="ext-absent"),
    ],
)
def test_raw_phone(record: dict[str, object], attribute: str, expected: str | None) -> None:
    assert raw_phone(record, attribute) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("businessPhones", "businessPhones", id="business"),
        pytest.param("mobilePhone", "mobilePhone", id="mobile"),
        pytest.param(EXT7, EXT7, id="extension-full"),
        pytest.param("extensionAttribute7", EXT7, id="extension-short"),
        pytest.param("businessphones", "businessPhones", id="lower-case"),
        pytest.param("MOBILEPHONE", "mobilePhone", id="upper-case"),
        pytest.param(
            "onpremisesextensionattributes.EXTENSIONATTRIBUTE15",
            "onPremisesExtensionAttributes.extensionAttribute15",
            id="extension-any-case",
        ),
        pytest.param(
            " extensionattribute1 ", "onPremisesExtensionAttributes.extensionAttribute1", id="padded"
        ),
    ],
)
def test_parse_phone_attribute(value: str, expected: str) -> None:
    assert parse_phone_attribute(value) == expected
    assert expected in PHONE_ATTRIBUTES


@pytest.mark.parametrize(
    "value",
    [
        "",
        "phone",
        "telephoneNumber",
        "extensionAttribute0",
        "extensionAttribute16",
        "businessPhones[0]",
        "onPremisesExtensionAttributes",
        "onPremisesExtensionAttributes.extensionAttribute",
    ],
)
def test_parse_phone_attribute_refuses_with_the_choices(value: str) -> None:
    with pytest.raises(ValueError, match="choose one of") as caught:
        parse_phone_attribute(value)
    message = str(caught.value)
    assert repr(value) in message
    for choice in ("businessPhones", "mobilePhone", "extensionAttribute1 ", "extensionAttribute15"):
        assert choice in message


def test_phone_attributes_are_the_seventeen_choices() -> None:
    assert len(PHONE_ATTRIBUTES) == len(set(PHONE_ATTRIBUTES)) == 17
    assert PHONE_ATTRIBUTES[:2] == ("businessPhones", "mobilePhone")
    assert PHONE_ATTRIBUTES[-1] == "onPremisesExtensionAttributes.extensionAttribute15"


@pytest.mark.parametrize(
    ("attribute", "phone_field"),
    [
        pytest.param("businessPhones", "businessPhones", id="business"),
        pytest.param("mobilePhone", "mobilePhone", id="mobile"),
        pytest.param(EXT7, "onPremisesExtensionAttributes", id="extension"),
        pytest.param("extensionattribute3", "onPremisesExtensionAttributes", id="extension-short-any-case"),
    ],
)
def test_select_fields(attribute: str, phone_field: str) -> None:
    assert select_fields(attribute) == [
        "id",
        "userPrincipalName",
        "accountEnabled",
        "onPremisesImmutableId",
        phone_field,
    ]


def test_select_fields_refuses_an_unknown_attribute() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        select_fields("faxNumber")


# --- consistency GUID ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1wfM9xV8fUSHbcAbDlqeOA==", "f7cc07d7-7c15-447d-876d-c01b0e5a9e38", id="notes-example"),
        pytest.param(base64.b64encode(bytes(16)).decode(), "00000000-0000-0000-0000-000000000000", id="nil"),
        pytest.param(
            base64.b64encode(b"\xff" * 16).decode(), "ffffffff-ffff-ffff-ffff-ffffffffffff", id="lower"
        ),
        pytest.param(base64.b64encode(bytes(12)).decode(), None, id="12-bytes"),
        pytest.param(base64.b64encode(bytes(17)).decode(), None, id="17-bytes"),
        pytest.param("", None, id="empty"),
        pytest.param("1wfM9xV8fUSHbcAbDlqeOA", None, id="unpadded"),
        pytest.param("1wfM9xV8fUSHbcAbDlqeOA==\n", None, id="trailing-newline"),
        pytest.param("1wfM9xV8fUSH bcAbDlqeOA==", None, id="inner-space"),
        pytest.param("not base64!", None, id="invalid-base64"),
        pytest.param("1wfM9xV8fUSHbcAbDlqeOA=ü", None, id="non-ascii"),
        pytest.param("ada@contoso.com", None, id="upn-shaped-anchor"),
        # Known limit: an anchor that is base64 of any 16 bytes reads as a GUID, whatever it was meant to be.
        pytest.param(
            base64.b64encode(b"jdoe@contoso.com").decode(),
            "656f646a-6340-6e6f-746f-736f2e636f6d",
            id="base64-of-16-byte-upn-is-indistinguishable",
        ),
        pytest.param("f7cc07d7-7c15-447d-876d-c01b0e5a9e38", None, id="guid-text-not-base64"),
        pytest.param(b"1wfM9xV8fUSHbcAbDlqeOA==", None, id="bytes"),
        pytest.param(12345, None, id="int"),
        pytest.param(None, None, id="none"),
        pytest.param(["1wfM9xV8fUSHbcAbDlqeOA=="], None, id="list"),
    ],
)
def test_decode_consistency_guid(value: object, expected: str | None) -> None:
    assert decode_consistency_guid(value) == expected


@given(st.binary(min_size=16, max_size=16))
@settings(max_examples=200, database=None, suppress_health_check=SUPPRESSED)
def test_consistency_guid_is_uuid_bytes_le(raw: bytes) -> None:
    assert decode_consistency_guid(base64.b64encode(raw).decode()) == str(uuid.UUID(bytes_le=raw))


# --- whole records ---------------------------------------------------------------------------------------


def test_a_typical_user_is_a_member() -> None:
    assert mapped(user()) == Member(
        object_id=OBJECT_ID,
        tenant_id=TENANT,
        upn="ada@contoso.com",
        phone_number="+14155550123",
        consistency_id="f7cc07d7-7c15-447d-876d-c01b0e5a9e38",
        phone_source="businessPhones",
    )


@pytest.mark.parametrize(
    ("record", "field", "expected"),
    [
        pytest.param(
            user(userPrincipalName="jürgen.müller@contoso.de"), "upn", "jürgen.müller@contoso.de", id="de"
        ),
        pytest.param(user(userPrincipalName="张伟@contoso.cn"), "upn", "张伟@contoso.cn", id="chinese"),
        pytest.param(user(userPrincipalName="🦊.fox@contoso.com"), "upn", "🦊.fox@contoso.com", id="emoji"),
        pytest.param(
            user(userPrincipalName=" ada@contoso.com\n"), "upn", "ada@contoso.com", id="upn-stripped"
        ),
        pytest.param(user(userPrincipalName="  "), "upn", None, id="upn-blank"),
        pytest.param(user(userPrincipalName=None), "upn", None, id="upn-null"),
        pytest.param(user(userPrincipalName=...), "upn", None, id="upn-absent"),
        pytest.param(user(userPrincipalName=42), "upn", None, id="upn-int"),
        pytest.param(user(userPrincipalName=["ada@contoso.com"]), "upn", None, id="upn-list"),
        pytest.param(user(id=f"  {OBJECT_ID} "), "object_id", OBJECT_ID, id="id-stripped"),
        pytest.param(user(accountEnabled=True), "object_id", OBJECT_ID, id="enabled"),
        pytest.param(user(accountEnabled=None), "object_id", OBJECT_ID, id="enabled-null"),
        pytest.param(user(accountEnabled=...), "object_id", OBJECT_ID, id="enabled-absent"),
        pytest.param(user(accountEnabled="false"), "object_id", OBJECT_ID, id="enabled-string-false"),
        pytest.param(user(accountEnabled=0), "object_id", OBJECT_ID, id="enabled-zero"),
        pytest.param(user(odata_type="#microsoft.graph.user"), "object_id", OBJECT_ID, id="odata-user"),
        pytest.param(user(odata_type=None), "object_id", OBJECT_ID, id="odata-null"),
        pytest.param(user(onPremisesImmutableId=...), "consistency_id", None, id="guid-absent"),
        pytest.param(user(onPremisesImmutableId=None), "consistency_id", None, id="guid-null"),
        pytest.param(
            user(onPremisesImmutableId="ada@contoso.com"), "consistency_id", None, id="guid-upn-anchor"
        ),
        pytest.param(
            user(onPremisesImmutableId=base64.b64encode(bytes(12)).decode()),
            "consistency_id",
            None,
            id="guid-12-bytes",
        ),
        pytest.param(user(onPremisesImmutableId=7), "consistency_id", None, id="guid-int"),
        pytest.param(
            user(businessPhones=["(415) 555-0123"]), "phone_number", "+14155550123", id="phone-national"
        ),
        pytest.param(
            user(businessPhones=[" ", "+44 20 7946 0958"]),
            "phone_number",
            "+442079460958",
            id="phone-first-non-blank",
        ),
    ],
)
def test_member_fields(record: dict[str, object], field: str, expected: object) -> None:
    member = mapped(record)
    assert isinstance(member, Member), member
    assert getattr(member, field) == expected


@pytest.mark.parametrize(
    ("record", "attribute", "expected"),
    [
        pytest.param(user(mobilePhone="+44 20 7946 0958"), "mobilePhone", "+442079460958", id="mobile"),
        pytest.param(
            user(onPremisesExtensionAttributes={"extensionAttribute7": "020 7946 0958"}),
            EXT7,
            "+442079460958",
            id="extension-national-gb",
        ),
        pytest.param(
            user(onPremisesExtensionAttributes={"extensionAttribute7": "+44 20 7946 0958"}),
            "extensionAttribute7",
            "+442079460958",
            id="extension-short-form",
        ),
    ],
)
def test_member_phone_from_the_configured_attribute(
    record: dict[str, object], attribute: str, expected: str
) -> None:
    member = mapped(record, attribute, region="GB")
    assert isinstance(member, Member)
    assert member.phone_number == expected


@pytest.mark.parametrize(
    ("record", "attribute", "reason", "detail"),
    [
        pytest.param(
            user(accountEnabled=False),
            "businessPhones",
            SkipReason.DISABLED,
            "accountEnabled is false",
            id="disabled",
        ),
        pytest.param(
            user(accountEnabled=False, businessPhones=[]),
            "businessPhones",
            SkipReason.DISABLED,
            "accountEnabled is false",
            id="disabled-before-phone",
        ),
        pytest.param(
            user(odata_type="#microsoft.graph.device"),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "'#microsoft.graph.device'",
            id="device",
        ),
        pytest.param(
            user(odata_type="#microsoft.graph.group"),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "'#microsoft.graph.group'",
            id="group",
        ),
        pytest.param(
            user(odata_type="#microsoft.graph.orgContact"),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "'#microsoft.graph.orgContact'",
            id="contact",
        ),
        pytest.param(
            user(odata_type="#microsoft.graph.servicePrincipal"),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "'#microsoft.graph.servicePrincipal'",
            id="service-principal",
        ),
        pytest.param(
            user(odata_type="microsoft.graph.user"),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "'microsoft.graph.user'",
            id="user-without-hash",
        ),
        pytest.param(
            user(odata_type=5), "businessPhones", SkipReason.NOT_A_USER, "@odata.type is 5", id="odata-int"
        ),
        pytest.param(
            user(odata_type="#microsoft.graph.device", accountEnabled=False),
            "businessPhones",
            SkipReason.NOT_A_USER,
            "device",
            id="not-a-user-before-disabled",
        ),
        pytest.param(
            user(businessPhones=[]),
            "businessPhones",
            SkipReason.NO_PHONE,
            "businessPhones is empty",
            id="no-business-phone",
        ),
        pytest.param(
            user(businessPhones=["", "  "]),
            "businessPhones",
            SkipReason.NO_PHONE,
            "businessPhones is empty",
            id="blank-business-phones",
        ),
        pytest.param(
            user(businessPhones=...),
            "businessPhones",
            SkipReason.NO_PHONE,
            "businessPhones is empty",
            id="business-phones-absent",
        ),
        pytest.param(
            user(businessPhones="+1 415 555 0123"),
            "businessPhones",
            SkipReason.NO_PHONE,
            "businessPhones is not a list",
            id="business-phones-string",
        ),
        pytest.param(
            user(businessPhones=[4155550123]),
            "businessPhones",
            SkipReason.NO_PHONE,
            "businessPhones has no text entry",
            id="business-phones-ints",
        ),
        pytest.param(user(), "mobilePhone", SkipReason.NO_PHONE, "mobilePhone is empty", id="no-mobile"),
        pytest.param(
            user(mobilePhone=4155550123),
            "mobilePhone",
            SkipReason.NO_PHONE,
            "mobilePhone is not text: 4155550123",
            id="mobile-int",
        ),
        pytest.param(user(), EXT7, SkipReason.NO_PHONE, f"{EXT7} is empty", id="extensions-absent"),
        pytest.param(
            user(onPremisesExtensionAttributes=None),
            EXT7,
            SkipReason.NO_PHONE,
            f"{EXT7} is empty",
            id="extensions-null",
        ),
        pytest.param(
            user(onPremisesExtensionAttributes={"extensionAttribute7": None}),
            EXT7,
            SkipReason.NO_PHONE,
            f"{EXT7} is empty",
            id="extension-null",
        ),
        pytest.param(
            user(businessPhones=["+1 415 555 0123 x12"]),
            "businessPhones",
            SkipReason.INVALID_PHONE,
            "businessPhones '+1 415 555 0123 x12' has an extension",
            id="extension",
        ),
        pytest.param(
            user(businessPhones=["n/a", "+1 415 555 0123"]),
            "businessPhones",
            SkipReason.INVALID_PHONE,
            "businessPhones 'n/a' is not a phone number",
            id="first-non-blank-wins-even-if-invalid",
        ),
        pytest.param(
            user(mobilePhone="1-800-FLOWERS"),
            "mobilePhone",
            SkipReason.INVALID_PHONE,
            "mobilePhone '1-800-FLOWERS' contains letters",
            id="vanity",
        ),
        pytest.param(
            user(businessPhones=["555-0123"]),
            "businessPhones",
            SkipReason.INVALID_PHONE,
            "'555-0123' is not a valid number",
            id="no-area-code",
        ),
        pytest.param(
            user(onPremisesExtensionAttributes={"extensionAttribute7": "TBD"}),
            EXT7,
            SkipReason.INVALID_PHONE,
            f"{EXT7} 'TBD'",
            id="extension-garbage",
        ),
    ],
)
def test_skipped(record: dict[str, object], attribute: str, reason: SkipReason, detail: str) -> None:
    skipped = mapped(record, attribute)
    assert isinstance(skipped, Skipped), skipped
    assert (skipped.object_id, skipped.upn, skipped.reason) == (OBJECT_ID, "ada@contoso.com", reason)
    assert detail in skipped.detail


@pytest.mark.parametrize(
    ("record", "detail"),
    [
        pytest.param(user(id=...), "id is missing", id="id-absent"),
        pytest.param(user(id=None), "id is missing", id="id-null"),
        pytest.param(user(id=""), "id is not a usable id: ''", id="id-empty"),
        pytest.param(user(id=" \t"), "not a usable id", id="id-blank"),
        pytest.param(user(id=12345), "not a usable id: 12345", id="id-int"),
        pytest.param(user(id=[OBJECT_ID]), "not a usable id", id="id-list"),
        pytest.param(user(id={"value": OBJECT_ID}), "not a usable id", id="id-object"),
        pytest.param(
            user(id=..., odata_type="#microsoft.graph.device"), "id is missing", id="id-before-type"
        ),
    ],
)
def test_records_without_a_usable_id(record: dict[str, object], detail: str) -> None:
    skipped = mapped(record)
    assert isinstance(skipped, Skipped)
    assert (skipped.object_id, skipped.upn, skipped.reason) == (
        "",
        "ada@contoso.com",
        SkipReason.INVALID_RECORD,
    )
    assert detail in skipped.detail


@pytest.mark.parametrize(
    ("record", "shown"),
    [
        pytest.param([], "[]", id="empty-list"),
        pytest.param([user()], "[{'accountEnabled': True, ", id="list-of-user"),
        pytest.param(list(range(100_000)), "[0, 1, 2, 3, ...]", id="long-list"),
        pytest.param("ada@contoso.com", "'ada@contoso.com'", id="str"),
        pytest.param(None, "None", id="none"),
        pytest.param(5, "5", id="int"),
        pytest.param(2.5, "2.5", id="float"),
        pytest.param(True, "True", id="bool"),
    ],
)
def test_non_objects_are_invalid_records(record: object, shown: str) -> None:
    skipped = mapped(record)
    assert isinstance(skipped, Skipped)
    assert (skipped.object_id, skipped.upn, skipped.reason) == ("", None, SkipReason.INVALID_RECORD)
    assert skipped.detail.startswith(f"not a JSON object: {shown}")
    assert len(skipped.detail) < 120


def test_deeply_nested_values_are_shown_briefly() -> None:
    nested: list[object] = []
    for _ in range(900):
        nested = [nested]
    skipped = mapped(user(id=nested))
    assert isinstance(skipped, Skipped)
    assert skipped.detail == "id is not a usable id: [[[...]]]"


def test_a_bad_phone_attribute_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        mapped(user(), "telephoneNumber")


# --- properties ------------------------------------------------------------------------------------------


def _example_phones() -> list[str]:
    """Valid numbers of several countries and types, written in several ways."""
    formats = [
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.RFC3966,
    ]
    phones = []
    for region in ("US", "GB", "DE", "FR", "JP", "AU", "IN", "BR", "ZA"):
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            number = phonenumbers.example_number_for_type(region, kind)
            assert number is not None
            phones += [phonenumbers.format_number(number, style) for style in formats]
    return phones


def mostly(likely: st.SearchStrategy[object], rest: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """`likely` three times in four: one_of picks its branches evenly, but drops repeated strategies, so the
    copies are made distinct."""
    return st.one_of(likely, likely.map(lambda x: x), likely.map(lambda x: x), rest)


PHONE_TEXT = st.one_of(
    mostly(st.sampled_from(_example_phones()), st.nothing()),
    st.sampled_from(["(415) 555-0123", "+1 415 555 0123 x12", "1-800-FLOWERS", "n/a", "", " ", "+", "tel:"]),
    st.text(alphabet="0123456789 +-().x/;,#extl:\u00a0\u2009\uff11", max_size=30),
    st.text(max_size=20),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
EXTENSION_ATTRIBUTES = st.fixed_dictionaries(
    {}, optional={f"extensionAttribute{n}": mostly(PHONE_TEXT, JSON) for n in (1, 7, 15)}
)
RECORD = st.fixed_dictionaries(
    {"id": mostly(st.uuids().map(str), st.sampled_from(["", " ", f" {OBJECT_ID} "]) | JSON)},
    optional={
        "userPrincipalName": mostly(st.text(max_size=20), JSON),
        "accountEnabled": mostly(st.sampled_from([True, True, None, False]), JSON),
        "businessPhones": mostly(
            st.lists(PHONE_TEXT, min_size=1, max_size=3), JSON | st.lists(JSON, max_size=3)
        ),
        "mobilePhone": mostly(PHONE_TEXT, JSON),
        "onPremisesImmutableId": mostly(
            st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()), JSON
        ),
        "onPremisesExtensionAttributes": mostly(EXTENSION_ATTRIBUTES, JSON),
        "@odata.type": mostly(st.just("#microsoft.graph.user"), st.just("#microsoft.graph.device") | JSON),
    },
)
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=SUPPRESSED,
)


@pytest.mark.parametrize("attribute", ["businessPhones", "mobilePhone", EXT7])
@given(record=mostly(RECORD, JSON), region=st.sampled_from(["US", "GB", "DE", "IN"]))
@PROPERTY
def test_map_user_never_raises_and_members_have_e164_numbers(
    attribute: str, record: object, region: str
) -> None:
    result = mapped(record, attribute, region)
    if isinstance(result, Skipped):
        assert isinstance(result.reason, SkipReason)
        assert result.detail
        assert (result.object_id == "") == (result.reason is SkipReason.INVALID_RECORD)
        return
    assert isinstance(result, Member)
    assert result.object_id
    assert result.object_id == result.object_id.strip()
    assert result.tenant_id == TENANT
    phone = result.phone_number
    assert re.fullmatch(r"\+[1-9][0-9]{1,14}", phone), phone  # E.164: "+", then at most 15 ASCII digits
    assert phonenumbers.is_valid_number(phonenumbers.parse(phone))
    if result.consistency_id is not None:
        assert str(uuid.UUID(result.consistency_id)) == result.consistency_id


@given(raw=PHONE_TEXT | st.text(), region=st.sampled_from(["US", "GB", "DE", "IN", "XX"]))
@PROPERTY
def test_to_e164_never_raises(raw: str, region: str) -> None:
    result = to_e164(raw, region)
    if isinstance(result, tuple):
        assert result[0] is SkipReason.INVALID_PHONE
        assert result[1]
    else:
        assert phonenumbers.is_valid_number(phonenumbers.parse(result))
        assert result == phonenumbers.format_number(
            phonenumbers.parse(result), phonenumbers.PhoneNumberFormat.E164
        )


@settings(max_examples=300, database=None, suppress_health_check=SUPPRESSED)
@given(
    country=st.sampled_from([1, 44, 49, 33, 61, 81, 91, 7, 39, 34]),
    national=st.integers(min_value=1, max_value=10**12),
    region=st.sampled_from(
        ["US", "CA", "GB", "JE", "DE", "FR", "AU", "JP", "IN", "RU", "KZ", "IT", "ES", "AG"]
    ),
)
def test_region_first_validity_agrees_with_phonenumbers(country: int, national: int, region: str) -> None:
    number = phonenumbers.PhoneNumber(country_code=country, national_number=national)
    assert is_valid(number, region) == phonenumbers.is_valid_number(number)


# --- scope beyond the groups: excluded groups and graph.filter -------------------------------------------

STAFF = parse_filter("employeeType eq 'Employee' and usageLocation in ('US', 'CA')")


def scoped(record: object, *, excluded_by: str | None = None) -> Member | Skipped:
    return map_user(
        record,
        tenant_id=TENANT,
        phone_sources="businessPhones",
        default_region="US",
        excluded_by=excluded_by,
        scope_filter=STAFF,
    )


def test_a_user_passing_the_filter_is_in_scope() -> None:
    member = scoped(user(employeeType="employee", usageLocation="CA"))
    assert isinstance(member, Member)
    assert member.phone_number == "+14155550123"


def test_a_user_failing_the_filter_is_filtered_with_the_clause() -> None:
    assert scoped(user(employeeType="Employee", usageLocation="DE")) == Skipped(
        OBJECT_ID,
        "ada@contoso.com",
        SkipReason.FILTERED,
        "graph.filter: usageLocation in ('US', 'CA') is false: usageLocation is 'DE'",
    )


def test_a_member_of_an_excluded_group_is_excluded_naming_the_group() -> None:
    assert scoped(user(employeeType="Employee", usageLocation="US"), excluded_by="Managers (m-1)") == Skipped(
        OBJECT_ID, "ada@contoso.com", SkipReason.EXCLUDED_GROUP, "member of excluded group Managers (m-1)"
    )


@pytest.mark.parametrize(
    ("fields", "excluded_by", "reason"),
    [
        # An exclusion is said first: it holds whatever the account or the phone.
        ({"accountEnabled": False, "businessPhones": []}, "m-1", SkipReason.EXCLUDED_GROUP),
        # Disabled before filtered: the built-in rule is named before the configured one.
        ({"accountEnabled": False, "employeeType": "Contractor"}, None, SkipReason.DISABLED),
        # Filtered before the phone is looked at: no phone needed to be out of scope.
        ({"employeeType": "Contractor", "businessPhones": ["n/a"]}, None, SkipReason.FILTERED),
        (
            {"employeeType": "Employee", "usageLocation": "US", "businessPhones": []},
            None,
            SkipReason.NO_PHONE,
        ),
        # Not a user still comes first.
        ({"odata_type": "#microsoft.graph.device"}, "m-1", SkipReason.NOT_A_USER),
    ],
)
def test_the_order_of_the_scope_rules(
    fields: dict[str, object], excluded_by: str | None, reason: SkipReason
) -> None:
    result = scoped(user(**fields), excluded_by=excluded_by)
    assert isinstance(result, Skipped)
    assert result.reason is reason


def test_select_fields_adds_only_what_the_filter_names() -> None:
    assert select_fields("mobilePhone", STAFF) == [
        "id",
        "userPrincipalName",
        "accountEnabled",
        "onPremisesImmutableId",
        "mobilePhone",
        "employeeType",
        "usageLocation",
    ]
    extension = parse_filter(
        "onPremisesExtensionAttributes/extensionAttribute7 ne 'noagent' and accountEnabled eq true"
    )
    # accountEnabled is selected already; the extension attribute selects its whole object, once.
    assert select_fields(EXT7, extension) == [
        "id",
        "userPrincipalName",
        "accountEnabled",
        "onPremisesImmutableId",
        "onPremisesExtensionAttributes",
    ]
