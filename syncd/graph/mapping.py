"""Turns one Graph member object (parsed JSON) into a Member or a Skipped: the scope rules of
docs/architecture.md.

The Graph reader selects the fields named by `select_fields`, parses member pages as plain JSON and calls
`map_user` once per object, so this runs 100,000 times per full cycle of a large tenant: it is lean, pure
and never raises on data (whatever Graph, or a broken proxy in between, sent). Phone numbers are
normalised to E.164 with `phonenumbers`, and only a field that holds exactly one valid number is accepted:
no extension, no letters (phonenumbers would silently turn vanity letters into digits), no lists.
`onPremisesImmutableId` is decoded to the msDS-ConsistencyGuid string when it is a GUID anchor. Members of an
excluded group (`graph.exclude_group_ids`) and users failing `graph.filter` are out of scope before their
phone is looked at. With a chain
of phone sources (`graph.phone_source`, e.g. teams, businessPhones, mobilePhone) the first source holding one
valid number gives it, and the member records which source that was.
"""

from __future__ import annotations

import base64
import functools
import re
import reprlib
import unicodedata
from collections.abc import Mapping, Sequence

import phonenumbers

from syncd.core.model import (
    EXTENSION_PREFIX,
    PHONE_ATTRIBUTES,
    TEAMS,
    Member,
    Skipped,
    SkipReason,
    parse_phone_attribute,
)
from syncd.core.scope_filter import ScopeFilter
from syncd.graph.teams import TeamsNumber

_CANONICAL: dict[str, str] = {name: name for name in PHONE_ATTRIBUTES}
_EXTENSION_KEY: dict[str, str] = {
    name: name.removeprefix(EXTENSION_PREFIX)
    for name in PHONE_ATTRIBUTES
    if name.startswith(EXTENSION_PREFIX)
}

_USER_TYPE = "#microsoft.graph.user"
_MAX_PHONE_LENGTH = 250  # phonenumbers refuses longer input; checking first keeps the refusal cheap
_SHOWN_LENGTH = 40  # how much of a raw value a detail quotes
_SHOWN = reprlib.Repr()  # bounded in size and depth, whatever a broken proxy nests
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother = 2, 4, 3, 24, 24
_LETTER = re.compile(r"[^\W\d_]")
# What separates entries of a list of numbers ("/" is also the German area-code separator, see _several).
_LIST_SEPARATOR = re.compile(r"[/,;|&\n]")
_INTERNATIONAL_START = re.compile(r"\+[\s().-]*\d")
_E164 = phonenumbers.PhoneNumberFormat.E164
_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "no valid country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def _canonical(phone_attribute: str) -> str:
    return _CANONICAL.get(phone_attribute) or parse_phone_attribute(phone_attribute)


@functools.cache
def _chain(phone_sources: str | tuple[str, ...]) -> tuple[str, ...]:
    """The canonical names of a phone source chain (worked out once per chain, not once per user)."""
    sources = (phone_sources,) if isinstance(phone_sources, str) else phone_sources
    return tuple(_canonical(source) if source != TEAMS else TEAMS for source in sources)


def select_fields(phone_sources: str | Sequence[str], scope_filter: ScopeFilter | None = None) -> list[str]:
    """Pure: the minimal Graph `$select` for users whose phone comes from `phone_sources` (one or a chain),
    plus the attributes `scope_filter` names (only those).

    Extension attributes can only be selected as the whole `onPremisesExtensionAttributes` object; the
    "teams" source is read from another endpoint and selects nothing here.
    """
    chain = [phone_sources] if isinstance(phone_sources, str) else phone_sources
    phone_fields = [_canonical(source).partition(".")[0] for source in chain if source != TEAMS]
    filter_fields = scope_filter.select if scope_filter is not None else ()
    return list(
        dict.fromkeys(
            [
                "id",
                "userPrincipalName",
                "accountEnabled",
                "onPremisesImmutableId",
                *phone_fields,
                *filter_fields,
            ]
        )
    )


def _phone_value(user: Mapping[str, object], canonical: str) -> object:
    """The JSON value at the attribute (for businessPhones: the list itself)."""
    key = _EXTENSION_KEY.get(canonical)
    if key is None:
        return user.get(canonical)
    attributes = user.get("onPremisesExtensionAttributes")
    return attributes.get(key) if isinstance(attributes, dict) else None


def raw_phone(user: Mapping[str, object], phone_attribute: str) -> str | None:
    """Pure: the raw phone text from a Graph user JSON object, as given (not stripped).

    For businessPhones the first entry that is non-blank text. None when the value is absent, null, empty,
    only whitespace or of the wrong JSON type.
    """
    canonical = _canonical(phone_attribute)
    value = _phone_value(user, canonical)
    if canonical == "businessPhones":
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, str) and entry.strip():
                    return entry
        return None
    if isinstance(value, str) and value.strip():
        return value
    return None


def _no_phone_detail(user: Mapping[str, object], canonical: str) -> str:
    value = _phone_value(user, canonical)
    if canonical == "businessPhones":
        if isinstance(value, list) and any(not isinstance(entry, str) for entry in value):
            return f"businessPhones has no text entry: {_shown(value)}"
        if value is not None and not isinstance(value, list):
            return f"businessPhones is not a list: {_shown(value)}"
    elif value is not None and not isinstance(value, str):
        return f"{canonical} is not text: {_shown(value)}"
    return f"{canonical} is empty"


def _shown(value: object) -> str:
    """A raw value for a detail: its repr (so odd characters show), cut short."""
    if not isinstance(value, str):
        return _SHOWN.repr(value)
    if len(value) <= _SHOWN_LENGTH:
        return repr(value)
    return f"{value[:_SHOWN_LENGTH]!r}... ({len(value)} characters)"


def _normalise_unicode(text: str) -> str:
    """Compatibility forms become plain ones (NFKC: full-width digits, "+" and separators); unicode spaces
    (thin, narrow no-break, figure, ...) become " ", since phonenumbers only knows a few; invisible format
    characters that copy and paste brings along (bidi marks, zero-width spaces, soft hyphens) are dropped.
    The checks after this then only need to know ASCII punctuation."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(" " if c.isspace() else c for c in text if unicodedata.category(c) != "Cf")


def _several(text: str, default_region: str) -> bool:
    """Whether the text looks like a list of numbers: two "+<digit>", or a list separator after a part that
    is a complete valid number on its own ("030/901820" is one German number; "+1 415 555 0100 / 0101"
    and "+49 30 901820 / 21" are two)."""
    if len(_INTERNATIONAL_START.findall(text)) > 1:
        return True
    separator = _LIST_SEPARATOR.search(text)
    if separator is None:
        return False
    try:
        head = phonenumbers.parse(text[: separator.start()], default_region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(head)


def is_valid(number: phonenumbers.PhoneNumber, default_region: str) -> bool:
    """Pure: `phonenumbers.is_valid_number(number)`, asked of the default region first.

    A number valid for the configured region is valid; asking that first skips is_valid_number's walk over
    every region that shares the country code (about 25 for +1), which was half the cost of mapping a user.
    """
    return phonenumbers.is_valid_number_for_region(number, default_region) or phonenumbers.is_valid_number(
        number
    )


PHONE_CACHE_SIZE = 1 << 18
"""Raw phone texts whose answer `to_e164` remembers per region: a long-lived daemon maps the same numbers
every cycle, and phonenumbers costs 25-40 us per number, the largest part of mapping a user. A plain dict
per region (emptied when full) rather than functools.lru_cache: a third less memory per entry."""

_phone_cache: dict[str, dict[str, str | tuple[SkipReason, str]]] = {}


def to_e164(raw: str, default_region: str) -> str | tuple[SkipReason, str]:
    """Pure: `parse_e164`, remembered (see PHONE_CACHE_SIZE)."""
    cache = _phone_cache.get(default_region)
    if cache is None:
        cache = _phone_cache[default_region] = {}
    answer = cache.get(raw)
    if answer is None:
        if len(cache) >= PHONE_CACHE_SIZE:
            cache.clear()
        answer = cache[raw] = parse_e164(raw, default_region)
    return answer


def phones_parsed(user: object, phone_sources: Sequence[str], default_region: str) -> bool:
    """Whether `map_user` would parse no phone text that `to_e164` does not remember: true when `user` holds
    none, or is no JSON object, or `to_e164` remembers each text `phone_sources` hold up to the first one that
    reads as a valid number ("teams" is passed over). `map_user` then costs a few microseconds, less than
    looking its result up in the mapping cache (`syncd.graph.mapping_cache`)."""
    if not isinstance(user, dict):
        return True
    cache = _phone_cache.get(default_region, {})
    for source in phone_sources:
        if source == TEAMS:
            continue
        raw = raw_phone(user, source)
        if raw is None:
            continue
        answer = cache.get(raw)
        if answer is None:
            return False
        if isinstance(answer, str):
            return True
    return True


def learn_phone(user: Mapping[str, object], member: Member, default_region: str) -> None:
    """Let `to_e164` remember, without parsing it, the phone text `member`'s number comes from: `member` is
    what `map_user` gave for `user` with `default_region` (a mapping taken from the mapping cache), so the
    text at its phone source is known to read as its number."""
    source = member.phone_source
    if source is None or source == TEAMS:
        return
    raw = raw_phone(user, source)
    if raw is None:
        return
    cache = _phone_cache.get(default_region)
    if cache is None:
        cache = _phone_cache[default_region] = {}
    if raw not in cache:
        if len(cache) >= PHONE_CACHE_SIZE:
            cache.clear()
        cache[raw] = member.phone_number


def forget_phones() -> None:
    """Forget every phone text `to_e164` remembers, as a fresh process starts (for tests and benchmarks)."""
    _phone_cache.clear()


_PLAIN_INTERNATIONAL = re.compile(r"\+[0-9 ().-]+")
_PLAIN_SEPARATORS = str.maketrans("", "", " ().-")
_national_prefixes: dict[int, re.Pattern[str] | None] = {}
"""Per country code: the pattern of the national prefix phonenumbers strips after it, None for none."""


def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    if country_code not in _national_prefixes:
        region = phonenumbers.region_code_for_country_code(country_code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        prefix = None if metadata is None else metadata.national_prefix_for_parsing
        _national_prefixes[country_code] = re.compile(prefix) if prefix else None
    return _national_prefixes[country_code]


def _plain_international(text: str, default_region: str) -> str | None:
    """Pure: E.164 for a valid number written as "+", its digits and plain separators (spaces, dots,
    dashes, parentheses), as `phonenumbers.parse` would read it, without parsing it: that is how most
    directories hold numbers, and parsing is most of the cost of mapping a user. None when the text is
    anything else, or phonenumbers would read it otherwise (no country code, a national number starting
    with 0 or with the region's national prefix), or it is not a valid number: `parse_e164` then parses
    it. tests/unit/test_mapping_plain.py holds the two readings equal over every region's numbers.
    """
    if _PLAIN_INTERNATIONAL.fullmatch(text) is None:
        return None
    digits = text[1:].translate(_PLAIN_SEPARATORS)
    if not digits.isdigit() or digits[0] == "0":
        return None
    for size in (1, 2, 3):  # country codes are prefix-free: at most one of these is one
        country_code = int(digits[:size])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[size:]
    if not 2 <= len(national) <= 17 or national[0] == "0":
        return None
    prefix = _national_prefix(country_code)
    if prefix is not None and prefix.match(national) is not None:
        return None
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    return "+" + digits if is_valid(number, default_region) else None


def parse_e164(raw: str, default_region: str) -> str | tuple[SkipReason, str]:
    """Pure: E.164 for a raw phone text, or (SkipReason.INVALID_PHONE, why) - never raises.

    `default_region` (ISO 3166 alpha-2) is used for numbers in national form; a number with "+" ignores it.
    Accepted: spaces (unicode ones too), dots, dashes, parentheses, a leading "tel:", digits phonenumbers
    reads (full-width, Arabic-Indic). Refused: anything but exactly one valid number without extension.
    """
    text = raw.strip()
    if text[:1] == "+" and len(text) <= _MAX_PHONE_LENGTH:
        plain = _plain_international(text, default_region)
        if plain is not None:
            return plain
    return parse_with_phonenumbers(raw, default_region)


def parse_with_phonenumbers(raw: str, default_region: str) -> str | tuple[SkipReason, str]:
    """Pure: `parse_e164` for any text, through `phonenumbers.parse`."""
    invalid = SkipReason.INVALID_PHONE
    text = raw.strip()
    if len(text) > _MAX_PHONE_LENGTH:
        return invalid, f"{_shown(raw)} is too long"
    if not text.isascii():
        text = _normalise_unicode(text).strip()
    if text[:4].lower() == "tel:":
        text = text[4:].lstrip()
    if not text:
        return invalid, f"{_shown(raw)} is blank"
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        if _several(text, default_region):
            return invalid, f"{_shown(raw)} holds more than one number"
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and "+" not in text:
            return invalid, f"{_shown(raw)} has no country code and region {default_region!r} is unknown"
        return invalid, f"{_shown(raw)} is {_PARSE_ERRORS.get(exc.error_type, 'not a phone number')}"
    except Exception:  # "never raises": a phonenumbers bug on one odd value must not stop a cycle
        return invalid, f"{_shown(raw)} could not be parsed"
    if number.extension:
        return invalid, f"{_shown(raw)} has an extension"
    if _LETTER.search(text):
        return invalid, f"{_shown(raw)} contains letters (no vanity numbers or labels)"
    if _several(text, default_region):
        return invalid, f"{_shown(raw)} holds more than one number"
    if not is_valid(number, default_region):
        where = "" if text.startswith("+") else f" (read with region {default_region})"
        return invalid, f"{_shown(raw)} is not a valid number{where}"
    return phonenumbers.format_number(number, _E164)


def decode_consistency_guid(value: object) -> str | None:
    """Pure: `onPremisesImmutableId` (base64 of a GUID in .NET byte order) -> lower-case GUID string.

    None for anything that is not base64 of exactly 16 bytes (another kind of anchor, garbage, wrong type).
    A 16-byte value cannot be told apart from a GUID, whatever it was meant to be.
    """
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        return None
    if len(raw) != 16:
        return None
    # str(uuid.UUID(bytes_le=raw)) (the first three fields little-endian) in a third of the time; the
    # round-trip test holds the two equal.
    h = (raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def teams_e164(raw: str, default_region: str) -> str | tuple[SkipReason, str]:
    """Pure: `to_e164` for a Teams `telephoneNumber`, which Teams keeps in international form: digits
    without the "+" that do not read as a valid number of the default region are read with a "+"."""
    phone = to_e164(raw, default_region)
    text = raw.strip()
    if isinstance(phone, tuple) and text.isdigit():
        retried = to_e164("+" + text, default_region)
        if isinstance(retried, str):
            return retried
    return phone


def _chosen_phone(
    user: Mapping[str, object],
    object_id: str,
    chain: Sequence[str],
    teams: Mapping[str, TeamsNumber] | None,
    default_region: str,
) -> tuple[str, str] | tuple[SkipReason, str]:
    """(E.164, source) from the first source with one valid number, or (reason, what each source held)."""
    problems: list[str] = []
    invalid = False
    for source in chain:
        if source == TEAMS:
            assigned = teams.get(object_id.lower()) if teams is not None else None
            if assigned is None:
                problems.append("teams has no number assigned")
                continue
            phone = teams_e164(assigned.number, default_region)
        else:
            raw = raw_phone(user, source)
            if raw is None:
                problems.append(_no_phone_detail(user, source))
                continue
            phone = to_e164(raw, default_region)
        if isinstance(phone, str):
            return phone, source
        invalid = True
        problems.append(f"{source} {phone[1]}")
    reason = SkipReason.INVALID_PHONE if invalid else SkipReason.NO_PHONE
    return reason, "; ".join(problems)


def map_user(
    user: object,
    *,
    tenant_id: str,
    phone_sources: str | Sequence[str],
    default_region: str,
    teams: Mapping[str, TeamsNumber] | None = None,
    excluded_by: str | None = None,
    scope_filter: ScopeFilter | None = None,
) -> Member | Skipped:
    """Pure: one Graph member object (parsed JSON, any shape) -> Member or Skipped. Never raises on data.

    Checked in order: a JSON object with a non-empty string `id` (else INVALID_RECORD, object_id ""),
    `@odata.type` (NOT_A_USER unless absent, null or "#microsoft.graph.user"), `excluded_by` (the
    excluded group that holds the user, as the detail names it: EXCLUDED_GROUP), `accountEnabled` exactly
    false (DISABLED), `scope_filter` (FILTERED, with the clause that failed), the phone: the first of
    `phone_sources` (one source or a chain of "teams" and attribute names) that holds one valid number
    gives it, else NO_PHONE (every source empty) or INVALID_PHONE (some source held something else), with
    what each source held. "teams" looks the user up in `teams` (by lower-case object ID). A source that
    `parse_phone_source` refuses raises its ValueError (it is a configuration value).
    """
    chain = _chain(phone_sources if isinstance(phone_sources, str) else tuple(phone_sources))
    if not isinstance(user, dict):
        return Skipped("", None, SkipReason.INVALID_RECORD, f"not a JSON object: {_shown(user)}")
    upn = user.get("userPrincipalName")
    upn = (upn.strip() or None) if isinstance(upn, str) else None
    object_id = user.get("id")
    if not isinstance(object_id, str) or not object_id.strip():
        what = "missing" if object_id is None else f"not a usable id: {_shown(object_id)}"
        return Skipped("", upn, SkipReason.INVALID_RECORD, f"id is {what}")
    object_id = object_id.strip()
    odata_type = user.get("@odata.type")
    if odata_type is not None and odata_type != _USER_TYPE:
        return Skipped(object_id, upn, SkipReason.NOT_A_USER, f"@odata.type is {_shown(odata_type)}")
    if excluded_by is not None:
        return Skipped(object_id, upn, SkipReason.EXCLUDED_GROUP, f"member of excluded group {excluded_by}")
    if user.get("accountEnabled") is False:
        return Skipped(object_id, upn, SkipReason.DISABLED, "accountEnabled is false")
    if scope_filter is not None:
        failed = scope_filter.failing(user)
        if failed is not None:
            return Skipped(object_id, upn, SkipReason.FILTERED, f"graph.filter: {failed}")
    phone, source = _chosen_phone(user, object_id, chain, teams, default_region)
    if isinstance(phone, SkipReason):
        return Skipped(object_id, upn, phone, source)
    consistency_id = decode_consistency_guid(user.get("onPremisesImmutableId"))
    return Member(object_id, tenant_id, upn, phone, consistency_id, source)
