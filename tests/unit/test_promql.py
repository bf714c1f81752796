"""The tests' PromQL reader (`tests/promql.py`): the series an expression names, and the malformed ones it
refuses."""

from __future__ import annotations

import pytest

from tests.promql import PromQLError, is_duration, metric_names, tokenize


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("up", {"up"}),
        ('syncd_cycles_total{outcome="ok"}', {"syncd_cycles_total"}),
        (
            "time() - max by (namespace, job) (syncd_last_success_timestamp_seconds)",
            {"syncd_last_success_timestamp_seconds"},
        ),
        (
            'sum by (job) (increase(syncd_operations_total{outcome="failed", action=~"on.*"}[1h])) / ignoring'
            " (outcome) group_left sum(rate(b[5m:1m]))",
            {"syncd_operations_total", "b"},
        ),
        ("a > 3 * b:recorded:seconds offset 1h", {"a", "b:recorded:seconds"}),
        ("x == 1 and on (namespace, job, instance) y == bool 1 or absent(z) unless w", {"x", "y", "z", "w"}),
        ("sum without (instance) (a) > 0.5e1", {"a"}),
        ("histogram_quantile(0.9, sum by (le) (rate(d_bucket[10m])))", {"d_bucket"}),
        ("# a comment\n  a", {"a"}),
    ],
)
def test_the_series_an_expression_reads(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("rate(a[5m]", "unclosed"),
        ("a)", "unbalanced"),
        ("a}", "unbalanced"),
        ("rates(a[5m])", "not a PromQL function: rates"),
        ('a{outcome="ok"', "unclosed"),
        ("a{outcome=ok}", "malformed label matcher"),
        ('a{outcome=="ok"}', "malformed label matcher"),
        ("rate(a[5])", "malformed range"),
        ("a offset b", "offset without a duration"),
        ("sum by job (a)", "without a list of labels"),
        ("sum by (a b) (c)", "malformed list of labels"),
        ("a > 5m", "duration out of place"),
        ("a $ b", "cannot read"),
        ("   ", "empty"),
    ],
)
def test_malformed_expressions_are_refused(expression: str, fragment: str) -> None:
    with pytest.raises(PromQLError, match=fragment):
        metric_names(expression)


def test_tokens_keep_strings_whole() -> None:
    tokens = tokenize('a{job="x, y}"} >= 1')
    assert [t.kind for t in tokens] == [
        "name",
        "punctuation",
        "name",
        "operator",
        "string",
        "punctuation",
        "operator",
        "number",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5m", True), ("1h30m", True), ("0m", True), ("500ms", True), ("5", False), ("m", False)],
)
def test_durations(text: str, expected: bool) -> None:
    assert is_duration(text) is expected
