"""A small PromQL reader for the tests: checks an expression's structure and names the series it reads.

It is not a PromQL parser; it tokenizes an expression and walks the tokens with the few rules that matter
for a rules file: brackets balance, every function and aggregation is one PromQL has, label matchers are
`label op "string"`, ranges and offsets are durations, `by`/`without`/`on`/`ignoring`/`group_left`/
`group_right` are followed by a list of labels. What is left are the metric names (recording rules have a
colon in theirs). `promtool check rules` does the full check where Prometheus is installed
(tests/e2e/test_alert_rules.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
        "clamp_min", "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month",
        "delta", "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "hour", "idelta",
        "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
        "max_over_time", "min_over_time", "minute", "month", "predict_linear", "present_over_time",
        "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt",
        "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector", "year",
    }
)  # fmt: skip
"""PromQL's functions (Prometheus 2.x)."""
AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
     "quantile"}
)  # fmt: skip
"""PromQL's aggregation operators."""
SET_OPERATORS = frozenset({"and", "or", "unless"})
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
"""Keywords followed by a parenthesised list of label names (optional after group_left/group_right)."""

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<duration>(?:\d+(?:ms|[smhdwy]))+)(?![\w.])
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w])
      | (?P<name>[A-Za-z_][A-Za-z0-9_:]*)
      | (?P<operator>==|!=|>=|<=|=~|!~|[-+*/%^<>=])
      | (?P<punctuation>[(){}\[\],:])
    )""",
    re.VERBOSE,
)
_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")


class PromQLError(ValueError):
    """An expression this reader finds malformed."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokenize(expression: str) -> list[Token]:
    """Pure: the tokens of `expression` (comments after `#` dropped); PromQLError at anything else."""
    text = re.sub(r"#[^\n]*", "", expression)
    tokens, position = [], 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise PromQLError(f"cannot read {text[position : position + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(Token(kind, match[kind]))
        position = match.end()
    if not tokens:
        raise PromQLError("an empty expression")
    return tokens


def metric_names(expression: str) -> set[str]:
    """Pure: the metric (and recording rule) names `expression` reads; PromQLError when its structure is
    wrong: brackets that do not balance, an unknown function, a malformed label matcher or range."""
    tokens = tokenize(expression)
    names: set[str] = set()
    stack: list[str] = []
    closing = {")": "(", "]": "[", "}": "{"}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.text in ("(", "["):
            stack.append(token.text)
            if token.text == "[":
                index = _range(tokens, index)
                stack.pop()
                continue
        elif token.text in (")", "]"):
            if not stack or stack.pop() != closing[token.text]:
                raise PromQLError(f"an unbalanced {token.text!r}")
        elif token.text == "{":
            index = _matchers(tokens, index)
            continue
        elif token.text == "}":
            raise PromQLError("an unbalanced '}'")
        elif token.kind == "name":
            word = token.text
            if word in LABEL_LISTS:
                index = _label_list(tokens, index, optional=word.startswith("group_"))
                continue
            if word == "offset":
                if following is None or following.kind != "duration":
                    raise PromQLError("offset without a duration")
                index += 2
                continue
            if word in SET_OPERATORS or word == "bool":
                pass
            elif following is not None and following.text == "(":
                if word not in FUNCTIONS | AGGREGATIONS:
                    raise PromQLError(f"not a PromQL function: {word}")
            elif word in AGGREGATIONS and following is not None and following.text in ("by", "without"):
                pass
            else:
                names.add(word)
        elif token.kind == "duration":
            raise PromQLError(f"a duration out of place: {token.text}")
        index += 1
    if stack:
        raise PromQLError(f"unclosed {''.join(stack)!r}")
    return names


def _label_list(tokens: list[Token], index: int, *, optional: bool) -> int:
    """The index after `by (a, b)` and the like, starting at the keyword."""
    index += 1
    if index >= len(tokens) or tokens[index].text != "(":
        if optional:
            return index
        raise PromQLError(f"{tokens[index - 1].text} without a list of labels")
    index += 1
    expect_name = True
    while index < len(tokens) and tokens[index].text != ")":
        token = tokens[index]
        if (expect_name and token.kind != "name") or (not expect_name and token.text != ","):
            raise PromQLError(f"a malformed list of labels near {token.text!r}")
        expect_name = not expect_name
        index += 1
    if index >= len(tokens):
        raise PromQLError("an unclosed list of labels")
    return index + 1


def _matchers(tokens: list[Token], index: int) -> int:
    """The index after `{label op "value", ...}`, starting at "{"."""
    index += 1
    while index < len(tokens) and tokens[index].text != "}":
        label, operator, value = tokens[index : index + 3]
        if label.kind != "name" or operator.text not in ("=", "!=", "=~", "!~") or value.kind != "string":
            raise PromQLError(f"a malformed label matcher near {label.text!r}")
        index += 3
        if index < len(tokens) and tokens[index].text == ",":
            index += 1
    if index >= len(tokens):
        raise PromQLError("an unclosed '{'")
    return index + 1


def _range(tokens: list[Token], index: int) -> int:
    """The index after `[5m]` or a subquery's `[1h:5m]`, starting at "["."""
    parts = [token.text for token in tokens[index + 1 : index + 5]]
    if len(parts) >= 2 and _DURATION.fullmatch(parts[0]) and parts[1] == "]":
        return index + 3
    if len(parts) >= 3 and _DURATION.fullmatch(parts[0]) and parts[1] == ":" and parts[2] == "]":
        return index + 4
    if (
        len(parts) == 4
        and _DURATION.fullmatch(parts[0])
        and parts[1] == ":"
        and _DURATION.fullmatch(parts[2])
        and parts[3] == "]"
    ):
        return index + 5
    raise PromQLError(f"a malformed range near {' '.join(parts)!r}")


def is_duration(text: str) -> bool:
    """Pure: whether `text` is a PromQL duration ("5m", "1h30m", "0m")."""
    return _DURATION.fullmatch(text) is not None


__all__ = ["AGGREGATIONS", "FUNCTIONS", "PromQLError", "Token", "is_duration", "metric_names", "tokenize"]
