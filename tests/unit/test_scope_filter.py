"""`graph.filter`, parsed and evaluated (syncd/core/scope_filter.py): every operator, precedence, case, null,
the clause an explanation shows, what it adds to `$select`, and the errors with their column. Plain data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from syncd.core.scope_filter import ATTRIBUTES, FilterError, parse_filter

ALICE: dict[str, object] = {
    "id": "a1",
    "userPrincipalName": "alice@contoso.com",
    "accountEnabled": True,
    "department": "Support",
    "jobTitle": "Team Lead",
    "employeeType": "Employee",
    "companyName": "Contoso",
    "officeLocation": "Seattle 2F",
    "usageLocation": "US",
    "country": "United States",
    "city": "Seattle",
    "userType": "Member",
    "mail": "Alice.Smith@Contoso.com",
    "onPremisesSyncEnabled": True,
    "onPremisesExtensionAttributes": {"extensionAttribute7": "noagent", "extensionAttribute1": None},
}
"""A user as Graph's JSON gives it; `city`-less and `department`-less variants are made per test."""


def passes(expression: str, user: dict[str, object] | None = None) -> bool:
    return parse_filter(expression).test(ALICE if user is None else user)


# --- each operator --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("department eq 'Support'", True),
        ("department eq 'Sales'", False),
        ("department ne 'Sales'", True),
        ("department ne 'Support'", False),
        ("usageLocation in ('US', 'CA')", True),
        ("usageLocation in ('GB')", False),
        ("usageLocation in ('DE', 'GB', 'us')", True),
        ("startswith(mail, 'alice.')", True),
        ("startswith(mail, 'smith')", False),
        ("endswith(userPrincipalName, '@contoso.com')", True),
        ("endswith(userPrincipalName, '@fabrikam.com')", False),
        ("contains(officeLocation, 'attle')", True),
        ("contains(officeLocation, '3F')", False),
        ("accountEnabled eq true", True),
        ("accountEnabled eq false", False),
        ("onPremisesSyncEnabled ne false", True),
        ("onPremisesExtensionAttributes/extensionAttribute7 eq 'noagent'", True),
        ("onPremisesExtensionAttributes/extensionAttribute7 ne 'noagent'", False),
        ("department eq 'Support' and city eq 'Seattle'", True),
        ("department eq 'Support' and city eq 'Austin'", False),
        ("department eq 'Sales' or city eq 'Seattle'", True),
        ("department eq 'Sales' or city eq 'Austin'", False),
        ("not department eq 'Sales'", True),
        ("not (department eq 'Support')", False),
        ("(department eq 'Sales' or department eq 'Support') and userType eq 'Member'", True),
    ],
)
def test_each_operator(expression: str, expected: bool) -> None:
    assert passes(expression) is expected


def test_a_string_with_a_quote_is_written_with_two() -> None:
    obrien = {**ALICE, "companyName": "O'Brien & Sons"}
    assert passes("companyName eq 'O''Brien & Sons'", obrien)
    assert passes("startswith(companyName, 'o''b')", obrien)


# --- precedence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # and binds tighter than or: true or (false and false)
        ("department eq 'Support' or city eq 'Austin' and country eq 'Canada'", True),
        # parentheses override it: (true or false) and false
        ("(department eq 'Support' or city eq 'Austin') and country eq 'Canada'", False),
        # not binds tighter than and: (not false) and true
        ("not department eq 'Sales' and city eq 'Seattle'", True),
        # not binds tighter than or: (not true) or false
        ("not department eq 'Support' or city eq 'Austin'", False),
        ("not (department eq 'Support' or city eq 'Austin')", False),
        ("not not department eq 'Support'", True),
        # left to right within one level
        ("department eq 'Sales' or city eq 'Austin' or country eq 'United States'", True),
        ("department eq 'Support' and city eq 'Seattle' and not usageLocation eq 'CA'", True),
    ],
)
def test_precedence_is_not_then_and_then_or(expression: str, expected: bool) -> None:
    assert passes(expression) is expected


# --- case -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "department eq 'SUPPORT'",
        "department EQ 'support'",
        "DEPARTMENT eq 'Support'",
        "usagelocation IN ('us')",
        "STARTSWITH(mail, 'ALICE')",
        "EndsWith(MAIL, '@CONTOSO.COM')",
        "contains(city, 'EATT')",
        "department eq 'Support' AND NOT city eq 'austin' Or country eq 'x'",
        "accountEnabled eq TRUE",
        "onpremisesextensionattributes/EXTENSIONATTRIBUTE7 eq 'NOAGENT'",
        "department eq '\u017fupport'",  # case folding, not only lower-casing: the long s folds to s
    ],
)
def test_keywords_names_and_strings_are_case_insensitive(expression: str) -> None:
    assert passes(expression)


def test_names_are_kept_as_graph_spells_them() -> None:
    parsed = parse_filter("DEPARTMENT eq 'x' or onpremisesextensionattributes/extensionattribute7 eq 'y'")
    assert parsed.attributes == ("department", "onPremisesExtensionAttributes/extensionAttribute7")


# --- null and values of the wrong type -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "user", "expected"),
    [
        ("city eq null", {"id": "x"}, True),  # absent
        ("city eq null", {"id": "x", "city": None}, True),
        ("city eq null", ALICE, False),
        ("city ne null", ALICE, True),
        ("city ne null", {"id": "x"}, False),
        ("city eq 'Seattle'", {"id": "x"}, False),
        ("city ne 'Seattle'", {"id": "x"}, True),  # OData: null ne 'x' is true
        ("city in ('Seattle')", {"id": "x"}, False),
        ("startswith(city, 'S')", {"id": "x"}, False),
        ("contains(city, '')", {"id": "x"}, False),
        ("onPremisesExtensionAttributes/extensionAttribute1 eq null", ALICE, True),
        ("onPremisesExtensionAttributes/extensionAttribute2 eq null", ALICE, True),  # key absent
        ("onPremisesExtensionAttributes/extensionAttribute7 eq null", {"id": "x"}, True),  # object absent
        (
            "onPremisesExtensionAttributes/extensionAttribute7 eq null",
            {"onPremisesExtensionAttributes": 5},
            True,
        ),
        ("accountEnabled eq null", {"id": "x"}, True),
        ("accountEnabled eq true", {"accountEnabled": "true"}, False),  # text is not a boolean
        ("accountEnabled ne true", {"accountEnabled": 1}, True),  # nor is a number
        ("department eq '5'", {"department": 5}, False),
        ("department eq null", {"department": 5}, False),  # a wrong type is still not null
        ("startswith(department, 'x')", {"department": ["x"]}, False),
    ],
)
def test_null_and_values_of_the_wrong_type(expression: str, user: dict[str, object], expected: bool) -> None:
    assert passes(expression, user) is expected


# --- what failed ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "failed"),
    [
        ("department eq 'Sales'", "department eq 'Sales' is false: department is 'Support'"),
        (
            "department eq 'Support' and usageLocation in ('CA', 'GB')",
            "usageLocation in ('CA', 'GB') is false: usageLocation is 'US'",
        ),
        (
            "employeeType eq 'Employee' and (usageLocation eq 'CA' or city eq null)",
            "(usageLocation eq 'CA' or city eq null) is false: usageLocation is 'US', city is 'Seattle'",
        ),
        (
            "not (onPremisesExtensionAttributes/extensionAttribute7 eq 'noagent')",
            "not (onPremisesExtensionAttributes/extensionAttribute7 eq 'noagent') is false: "
            "onPremisesExtensionAttributes/extensionAttribute7 is 'noagent'",
        ),
        ("accountEnabled eq false", "accountEnabled eq false is false: accountEnabled is true"),
        ("jobTitle eq null", "jobTitle eq null is false: jobTitle is 'Team Lead'"),
        (
            "department eq 'Support'\n  and startswith(mail, 'bob')",
            "startswith(mail, 'bob') is false: mail is 'Alice.Smith@Contoso.com'",
        ),
    ],
)
def test_the_failing_clause_is_named_with_what_it_saw(expression: str, failed: str) -> None:
    assert parse_filter(expression).failing(ALICE) == failed


def test_a_passing_user_has_no_failing_clause() -> None:
    assert parse_filter("department eq 'Support' and not city eq 'Austin'").failing(ALICE) is None


def test_a_missing_value_is_shown_as_null() -> None:
    failed = parse_filter("country in ('US', 'CA')").failing({"id": "x"})
    assert failed == "country in ('US', 'CA') is false: country is null"


# --- $select --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "select"),
    [
        ("department eq 'Support'", ("department",)),
        (
            "usageLocation in ('US') and not (usageLocation eq 'CA') or city eq null",
            ("usageLocation", "city"),
        ),
        (
            "onPremisesExtensionAttributes/extensionAttribute7 ne 'x' and "
            "onPremisesExtensionAttributes/extensionAttribute3 eq null",
            ("onPremisesExtensionAttributes",),  # Graph selects the whole object, not one attribute
        ),
        ("accountEnabled eq true and endswith(mail, '.com')", ("accountEnabled", "mail")),
    ],
)
def test_only_the_named_attributes_are_selected(expression: str, select: tuple[str, ...]) -> None:
    assert parse_filter(expression).select == select


def test_every_documented_attribute_parses() -> None:
    for name in ATTRIBUTES:
        literal = "true" if name in ("accountEnabled", "onPremisesSyncEnabled") else "'x'"
        assert parse_filter(f"{name} eq {literal}").attributes == (name,)


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        (
            "department equals 'Sales'",
            12,
            'syntax error at column 12: expected "eq", "ne", "in" or "/", found \'equals\'',
        ),
        (
            "department eq Sales",
            15,
            'syntax error at column 15: expected a string in single quotes, "null", "true" or "false", '
            "found 'Sales'",
        ),
        (
            'department eq "Sales"',
            15,
            "found '\"' (strings are written in single quotes)",
        ),
        ("department eq 'Sales", 15, 'found "\'" (a string that is not closed on its line)'),
        (
            "(department eq 'Sales'",
            23,
            'syntax error at column 23: expected "or", "and" or ")", found the end of the filter',
        ),
        (
            "department eq 'Sales' and",
            26,
            'expected an attribute, "not", "startswith", "endswith", "contains" or "(", '
            "found the end of the filter",
        ),
        (
            "department eq 'Sales' city eq 'x'",
            23,
            'expected "or", "and" or the end of the filter, found \'city\'',
        ),
        ("usageLocation in 'US'", 18, 'syntax error at column 18: expected "(", found "\'US\'"'),
        ("usageLocation in ()", 19, "found ')'"),
        ("startswith(mail 'a')", 17, 'expected "," or "/", found "\'a\'"'),
        ("", 1, "syntax error at column 1"),
        ("department eq 'x'\n  and city eqq 'y'", 12, "syntax error at line 2, column 12"),
    ],
)
def test_a_syntax_error_names_the_column_and_what_was_expected(
    expression: str, column: int, message: str
) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    assert caught.value.column == column
    assert message in str(caught.value)


def test_an_unknown_attribute_lists_the_known_ones() -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter("department eq 'Support' and dept eq 'x'")
    message = str(caught.value)
    assert message.startswith(
        "unknown attribute 'dept' at column 29; the known attributes are accountEnabled, "
    )
    for name in (
        "department",
        "employeeType",
        "usageLocation",
        "onPremisesExtensionAttributes/extensionAttribute1..15",
    ):
        assert name in message
    assert caught.value.column == 29


@pytest.mark.parametrize(
    ("expression", "column", "message"),
    [
        ("onPremisesExtensionAttributes/extensionAttribute16 eq 'x'", 1, "unknown attribute"),
        ("extensionAttribute7 eq 'x'", 1, "unknown attribute 'extensionAttribute7'"),
        ("displayName eq 'x'", 1, "unknown attribute 'displayName'"),
        ("accountEnabled eq 'yes'", 19, "accountEnabled is true or false, not text at column 19"),
        (
            "department eq true",
            15,
            "department is text: compare it with a string in single quotes at column 15",
        ),
        ("startswith(accountEnabled, 'x')", 1, "startswith() takes a text attribute"),
        ("usageLocation in ('US', null)", 25, "null is compared with eq or ne only at column 25"),
        ("contains(city, null)", 16, "null is compared with eq or ne only"),
    ],
)
def test_a_name_or_literal_that_cannot_be_used_is_refused(expression: str, column: int, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    assert caught.value.column == column
    assert message in str(caught.value)


def test_filter_errors_are_value_errors_so_settings_report_them_under_their_key() -> None:
    assert issubclass(FilterError, ValueError)


# --- docs/scoping.md stays true ---------------------------------------------------------------------------

SCOPING = Path(__file__).resolve().parents[2] / "docs" / "scoping.md"


def documented_filters() -> list[str]:
    text = SCOPING.read_text(encoding="utf-8")
    found = [m.group(1) for m in re.finditer(r'^\s*filter = """\n(.*?)"""', text, flags=re.M | re.S)]
    found += re.findall(r'^\s*filter = "([^"\n]+)"$', text, flags=re.M)
    found += re.findall(r'`filter = "([^"`]+)"`', text)
    return found


def documented_mistakes() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| [^|]*?: `([^`]+)` \| `(.+)` \|$", SCOPING.read_text(encoding="utf-8"), flags=re.M)
    return [(expression, message) for expression, message in rows]


def test_every_example_in_the_scoping_page_parses() -> None:
    examples = documented_filters()
    assert len(examples) >= 6
    for expression in examples:
        parse_filter(expression)


def test_every_mistake_in_the_scoping_page_gives_the_documented_message() -> None:
    mistakes = documented_mistakes()
    assert len(mistakes) >= 10
    for expression, message in mistakes:
        with pytest.raises(FilterError) as caught:
            parse_filter(expression)
        for part in message.split(" ... "):
            assert part in str(caught.value), (expression, str(caught.value))
