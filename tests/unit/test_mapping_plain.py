"""`parse_e164`'s plain reading of "+digits" numbers (`_plain_international`) against phonenumbers' own.

The plain reading skips `phonenumbers.parse` for numbers written as "+", digits and plain separators. It
must give what parsing gives, for every region's numbers, whatever the default region: these tests read
each region's example numbers (valid, so the plain reading answers them) and their near misses (a national
prefix or a 0 after the country code, a digit too many or too few, no known country code) both ways.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.graph.mapping import _plain_international, parse_e164, parse_with_phonenumbers

DEFAULT_REGIONS = ("US", "DE", "GB", "IT", "AR", "AU", "BR", "IN", "JP", "RU")
EVERY_NUMBER_REGIONS = ("US", "IT")
"""Default regions every example number is read with (a number with "+" ignores the default region, but
validity is asked of it first, `is_valid`); the random texts use all of DEFAULT_REGIONS."""


def example_numbers() -> Iterator[phonenumbers.PhoneNumber]:
    """Every example number phonenumbers' metadata holds: each region's, for each type, and the
    non-geographic entities' (+800, +808, +870, ...)."""
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(12):  # every PhoneNumberType but UNKNOWN
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                yield number
    for country_code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(country_code)
        if number is not None:
            yield number


def written(number: phonenumbers.PhoneNumber, rng: random.Random) -> list[str]:
    """The ways people write `number` with a "+": E.164, phonenumbers' international format, and that
    format with its spaces turned into dots, dashes or none, and its first group in parentheses."""
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    spaced = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    code, _, rest = spaced.partition(" ")
    head, _, tail = rest.partition(" ")
    texts = [e164, spaced, spaced.replace(" ", "."), spaced.replace(" ", "-"), f"{code} ({head}) {tail}"]
    texts.append("".join(c + (rng.choice(" .-") if rng.random() < 0.3 else "") for c in e164))
    return texts


def near_misses(number: phonenumbers.PhoneNumber) -> list[str]:
    """Texts one step from `number`'s E.164: what the plain reading must leave to phonenumbers, or read
    as phonenumbers does."""
    code, national = str(number.country_code), phonenumbers.national_significant_number(number)
    return [
        f"+{code}0{national}",  # a trunk 0 left in
        f"+{code} (0) {national}",
        f"+{code}1{national}",  # +1's national prefix, and a digit too many elsewhere
        f"+{code}{national}5",
        f"+{code}{national[:-1]}",
        f"+{code}{national[:2]}",
        f"+0{code}{national}",
        f"+{code}{national} {national}",
        f"+ {code} {national}",
        f"+{code}{national})",
    ]


def test_the_plain_reading_equals_parsing_for_every_regions_numbers() -> None:
    rng = random.Random(17)
    texts = [text for number in example_numbers() for text in (*written(number, rng), *near_misses(number))]
    assert len(texts) > 10_000
    read_plainly = 0
    for region in EVERY_NUMBER_REGIONS:
        for text in texts:
            assert parse_e164(text, region) == parse_with_phonenumbers(text, region), (text, region)
            read_plainly += _plain_international(text, region) is not None
    # Most of the example numbers are read plainly: the fast path is taken, not only ever declined.
    assert read_plainly > len(EVERY_NUMBER_REGIONS) * len(texts) // 3


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("+14155550123", "+14155550123"),  # valid: read plainly
        ("+1 (415) 555-0123", "+14155550123"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+390612345678", None),  # Italy keeps its leading 0: phonenumbers reads it
        ("+44 (0) 20 7946 0958", None),  # the national prefix after the country code
        ("+1 1 415 555 0123", None),  # +1's national prefix
        ("+999 123 4567", None),  # no such country code
        ("+1 415 555 0123 x12", None),  # an extension: not plain
        ("+1 415 555 0123 / 0124", None),  # a list: not plain
        ("+14155550123\u200b", None),  # not ASCII
        ("+1415555012", None),  # too short: not valid
    ],
)
def test_what_the_plain_reading_answers_and_declines(text: str, plain: str | None) -> None:
    assert _plain_international(text, "US") == plain
    assert parse_e164(text, "US") == parse_with_phonenumbers(text, "US")


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="0123456789 ().-+", min_size=1, max_size=24).map(lambda t: "+" + t),
    st.sampled_from(DEFAULT_REGIONS),
)
def test_any_text_of_plain_characters_reads_as_phonenumbers_reads_it(text: str, region: str) -> None:
    assert parse_e164(text, region) == parse_with_phonenumbers(text, region)
