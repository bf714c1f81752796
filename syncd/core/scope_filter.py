"""`graph.filter`: one OData-`$filter`-style expression over a user's attributes that decides, with the
groups, who is in scope. Parsed by a real grammar (lark, LALR), checked against the attributes syncd knows,
and evaluated by syncd on the fields its Graph reads select.

    employeeType eq 'Employee' and usageLocation in ('US', 'CA')
    and not (onPremisesExtensionAttributes/extensionAttribute7 eq 'noagent')

Operators: `eq`, `ne`, `in (...)`, `startswith(attr, 'x')`, `endswith(...)`, `contains(...)`, `and`, `or`,
`not`, parentheses, and the literals `null`, `true`, `false` and strings in single quotes (a quote inside
doubled: 'O''Brien'). `not` binds tighter than `and`, which binds tighter than `or`. Keywords and attribute
names are case-insensitive; strings compare case-insensitively, as Graph compares them.

Null: an attribute that is absent or null equals `null` only: `eq 'x'`, `in (...)` and the functions are
false for it and `ne 'x'` is true (OData's rules). A value of the wrong JSON type (text where a boolean
belongs, or the other way round) is never equal to anything and never null.

Pure: no I/O. `parse_filter` raises `FilterError` (a ValueError, so a settings validator reports it under
the key `graph.filter` and the command exits 2) saying where (line and column) and what was expected, or
which attribute is unknown and which are known. A parsed `ScopeFilter` gives `failing(user)`: None when the
user passes, else the clause that failed and the values it saw (for `Skipped.detail` and `syncd explain`).
"""

from __future__ import annotations

import functools
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

EXTENSIONS = "onPremisesExtensionAttributes"

TEXT_ATTRIBUTES: tuple[str, ...] = (
    "department",
    "jobTitle",
    "employeeType",
    "companyName",
    "officeLocation",
    "usageLocation",
    "country",
    "city",
    "userType",
    "mail",
    "userPrincipalName",
    *(f"{EXTENSIONS}/extensionAttribute{n}" for n in range(1, 16)),
)
"""The text attributes a filter may name (extension attributes as paths, written with "/" as in Graph)."""

BOOLEAN_ATTRIBUTES: tuple[str, ...] = ("accountEnabled", "onPremisesSyncEnabled")
"""The true/false attributes a filter may name."""

ATTRIBUTES: tuple[str, ...] = (*BOOLEAN_ATTRIBUTES, *TEXT_ATTRIBUTES)
_BY_LOWER = {name.lower(): name for name in ATTRIBUTES}
KNOWN_TEXT = ", ".join([*BOOLEAN_ATTRIBUTES, *TEXT_ATTRIBUTES[:11], f"{EXTENSIONS}/extensionAttribute1..15"])
"""The known attributes, as an error message lists them."""

_GRAMMAR = r"""
?start: expr
?expr: expr OR term -> or_
     | term
?term: term AND factor -> and_
     | factor
?factor: NOT factor -> not_
       | "(" expr ")"
       | comparison
       | membership
       | call
comparison: path (EQ | NE) literal
membership: path IN "(" literal ("," literal)* ")"
call: FUNCTION "(" path "," literal ")"
path: NAME ("/" NAME)*
?literal: STRING | NULL | TRUE | FALSE

OR.2: /or\b/i
AND.2: /and\b/i
NOT.2: /not\b/i
IN.2: /in\b/i
EQ.2: /eq\b/i
NE.2: /ne\b/i
FUNCTION.2: /(startswith|endswith|contains)\b/i
NULL.2: /null\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /'(?:[^'\n]|'')*'/

%import common.WS
%ignore WS
"""

_EXPECTED = {
    "NAME": "an attribute",
    "STRING": "a string in single quotes",
    "NULL": '"null"',
    "TRUE": '"true"',
    "FALSE": '"false"',
    "EQ": '"eq"',
    "NE": '"ne"',
    "IN": '"in"',
    "OR": '"or"',
    "AND": '"and"',
    "NOT": '"not"',
    "FUNCTION": '"startswith", "endswith", "contains"',
    "LPAR": '"("',
    "RPAR": '")"',
    "COMMA": '","',
    "SLASH": '"/"',
    "$END": "the end of the filter",
}
_ORDER = list(_EXPECTED)

_LINE_BREAK = re.compile(r"\s*\n\s*")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_SHOWN = reprlib.Repr()
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxlevel = 40, 40, 4, 3, 2


class FilterError(ValueError):
    """A filter that cannot be used: the message says where (line and column) and what is wrong."""

    def __init__(self, message: str, *, line: int, column: int) -> None:
        self.line = line
        self.column = column
        super().__init__(message)


# --- the clauses ---------------------------------------------------------------------------------------

Getter = Callable[[Mapping[str, object]], object]


def _getter(path: str) -> Getter:
    head, _, leaf = path.partition("/")
    if not leaf:
        return lambda user: user.get(head)

    def nested(user: Mapping[str, object]) -> object:
        outer = user.get(head)
        return outer.get(leaf) if isinstance(outer, dict) else None

    return nested


@dataclass(frozen=True, eq=False)
class Clause:
    """One part of the expression: its text as written and the attributes it names."""

    text: str
    attributes: tuple[str, ...]

    def test(self, user: Mapping[str, object]) -> bool:
        raise NotImplementedError

    def failing(self, user: Mapping[str, object]) -> Clause | None:
        """The innermost clause that decides that `user` fails this one; None when the user passes."""
        return None if self.test(user) else self


def _folded(value: object) -> object:
    """A value as compared: text case-folded, anything else as it is."""
    return value.casefold() if isinstance(value, str) else value


def _same(value: object, literal: object) -> bool:
    # bool is not int here: True must not equal a stray 1 from a broken proxy.
    return type(value) is type(literal) and _folded(value) == literal


@dataclass(frozen=True, eq=False)
class Compare(Clause):
    """`attr eq literal` / `attr ne literal` (the literal None is `null`)."""

    get: Getter
    negated: bool
    literal: object

    def test(self, user: Mapping[str, object]) -> bool:
        value = self.get(user)
        equal = value is None if self.literal is None else _same(value, self.literal)
        return equal != self.negated


@dataclass(frozen=True, eq=False)
class Within(Clause):
    """`attr in (literal, ...)`."""

    get: Getter
    literals: tuple[object, ...]

    def test(self, user: Mapping[str, object]) -> bool:
        value = self.get(user)
        return any(_same(value, literal) for literal in self.literals)


@dataclass(frozen=True, eq=False)
class Call(Clause):
    """`startswith(attr, 'x')`, `endswith(...)`, `contains(...)` on text."""

    get: Getter
    function: str
    literal: str

    def test(self, user: Mapping[str, object]) -> bool:
        value = self.get(user)
        if not isinstance(value, str):
            return False
        folded = value.casefold()
        if self.function == "startswith":
            return folded.startswith(self.literal)
        if self.function == "endswith":
            return folded.endswith(self.literal)
        return self.literal in folded


@dataclass(frozen=True, eq=False)
class Not(Clause):
    inner: Clause

    def test(self, user: Mapping[str, object]) -> bool:
        return not self.inner.test(user)


@dataclass(frozen=True, eq=False)
class AllOf(Clause):
    """`a and b and ...`: fails where its first failing part fails."""

    parts: tuple[Clause, ...]

    def test(self, user: Mapping[str, object]) -> bool:
        return all(part.test(user) for part in self.parts)

    def failing(self, user: Mapping[str, object]) -> Clause | None:
        for part in self.parts:
            found = part.failing(user)
            if found is not None:
                return found
        return None


@dataclass(frozen=True, eq=False)
class AnyOf(Clause):
    """`a or b or ...`: fails as a whole (every part failed)."""

    parts: tuple[Clause, ...]

    def test(self, user: Mapping[str, object]) -> bool:
        return any(part.test(user) for part in self.parts)


# --- the filter ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ScopeFilter:
    """A parsed `graph.filter`."""

    expression: str
    """The filter as configured."""
    root: Clause
    attributes: tuple[str, ...]
    """The attributes it names (canonical paths, in order of first use)."""

    @property
    def select(self) -> tuple[str, ...]:
        """The Graph user properties to `$select` for it (an extension attribute selects its whole object)."""
        return tuple(dict.fromkeys(name.partition("/")[0] for name in self.attributes))

    def test(self, user: Mapping[str, object]) -> bool:
        """Pure: whether `user` (a Graph user as parsed JSON) passes."""
        return self.root.test(user)

    def failing(self, user: Mapping[str, object]) -> str | None:
        """Pure: None when `user` passes; else the clause that failed and the values it saw, e.g.
        "usageLocation in ('US', 'CA') is false: usageLocation is 'DE'" (an `and` or `or` clause in
        parentheses)."""
        clause = self.root.failing(user)
        if clause is None:
            return None
        text = f"({clause.text})" if isinstance(clause, AllOf | AnyOf) else clause.text
        seen = ", ".join(f"{name} is {shown(_getter(name)(user))}" for name in clause.attributes)
        return f"{text} is false: {seen}"


def shown(value: object) -> str:
    """Pure: an attribute's value as an explanation quotes it: 'text', true, false, null (bounded)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _SHOWN.repr(value)


@functools.cache
def _parser() -> Lark:
    # Built on first use only: most configurations have no filter.
    return Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


@functools.lru_cache(maxsize=16)
def parse_filter(expression: str) -> ScopeFilter:
    """Pure: the `ScopeFilter` of an expression, or FilterError saying where and what is wrong: a syntax
    error (what was expected there), an unknown attribute (listing the known ones), or a literal of the
    wrong kind for its attribute."""
    try:
        tree = _parser().parse(expression)
    except UnexpectedInput as exc:
        raise _syntax_error(expression, exc) from None
    except LarkError as exc:  # pragma: no cover - lark raises UnexpectedInput for every input error
        raise FilterError(f"cannot be parsed: {exc}", line=1, column=1) from None
    builder = _Builder(expression)
    root = builder.clause(tree)
    return ScopeFilter(expression, root, tuple(dict.fromkeys(builder.attributes)))


def _where(expression: str, line: int, column: int) -> str:
    return f"column {column}" if "\n" not in expression.strip() else f"line {line}, column {column}"


def _syntax_error(expression: str, exc: UnexpectedInput) -> FilterError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    found: str
    if isinstance(exc, UnexpectedCharacters):
        expected = _expected(exc.allowed)
        position = exc.pos_in_stream or 0
        word = _WORD.match(expression, position)
        char = expression[position] if position < len(expression) else ""
        found = repr(word[0] if word else char) if char else "the end of the filter"
        if char == '"':
            found += " (strings are written in single quotes)"
        elif char == "'":
            found += " (a string that is not closed on its line)"
    elif isinstance(exc, UnexpectedToken):
        token: Token = exc.token
        expected = _expected(exc.accepts or exc.expected)
        if token.type == "$END":
            found = "the end of the filter"
            line, column = _end(expression)
        else:
            found = repr(str(token))
    elif isinstance(exc, UnexpectedEOF):
        expected = _expected(exc.expected)
        found = "the end of the filter"
        line, column = _end(expression)
    else:  # pragma: no cover - the three above are lark's input errors
        expected, found = "something else", "this"
    where = _where(expression, line, column)
    return FilterError(
        f"syntax error at {where}: expected {expected}, found {found}", line=line, column=column
    )


def _end(expression: str) -> tuple[int, int]:
    """The line and column just after the last character."""
    lines = expression.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


def _expected(names: object) -> str:
    """Pure: lark's expected terminals in words, in a stable order: '"eq", "ne", "in" or "/"'."""
    given = {str(name) for name in names} if isinstance(names, set | frozenset | list | tuple) else set()
    if "OR" in given:
        # Where "or" may follow, the last factor is complete and "and" may follow too; LALR's reductions on
        # the lookahead can leave it out of lark's list.
        given.add("AND")
    words = list(dict.fromkeys(_EXPECTED.get(name, name.lower()) for name in sorted(given, key=_rank)))
    if not words:
        return "something else"
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _rank(name: str) -> int:
    return _ORDER.index(name) if name in _ORDER else len(_ORDER)


class _Builder:
    """Turns lark's tree into clauses, checking names and the kinds of literals."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.attributes: list[str] = []

    def _text(self, tree: Tree[Token]) -> str:
        meta = tree.meta
        return _LINE_BREAK.sub(" ", self.expression[meta.start_pos : meta.end_pos])

    def _fail(self, message: str, line: int, column: int, *, then: str = "") -> FilterError:
        where = _where(self.expression, line, column)
        return FilterError(f"{message} at {where}{then}", line=line, column=column)

    def clause(self, tree: Tree[Token]) -> Clause:
        rule = tree.data
        children = [child for child in tree.children if isinstance(child, Tree)]
        if rule in ("or_", "and_"):
            kind = AnyOf if rule == "or_" else AllOf
            parts: list[Clause] = []
            for child in children:
                part = self.clause(child)
                # a or b or c is one clause of three parts (and the same for and).
                parts.extend(part.parts if isinstance(part, kind) else [part])
            return kind(self._text(tree), _names(parts), tuple(parts))
        if rule == "not_":
            inner = self.clause(children[0])
            return Not(self._text(tree), inner.attributes, inner)
        tokens = [child for child in tree.children if isinstance(child, Token)]
        path_tree = children[0]
        name, boolean = self._attribute(path_tree)
        get = _getter(name)
        if rule == "comparison":
            operator, literal_token = tokens
            literal = self._literal(literal_token, name, boolean, allow_null=True)
            return Compare(self._text(tree), (name,), get, operator.lower() == "ne", literal)
        if rule == "membership":
            literals = tuple(self._literal(t, name, boolean, allow_null=False) for t in tokens[1:])
            return Within(self._text(tree), (name,), get, literals)
        function, literal_token = tokens
        if boolean:
            raise self._fail(
                f"{function.lower()}() takes a text attribute, and {name} is true or false",
                function.line or 1,
                function.column or 1,
            )
        text = self._literal(literal_token, name, boolean, allow_null=False)
        assert isinstance(text, str)
        return Call(self._text(tree), (name,), get, function.lower(), text)

    def _attribute(self, path: Tree[Token]) -> tuple[str, bool]:
        """The canonical name of an attribute path, and whether it is a boolean one."""
        parts = [str(token) for token in path.children if isinstance(token, Token)]
        written = "/".join(parts)
        canonical = _BY_LOWER.get(written.lower())
        if canonical is None:
            first = next(token for token in path.children if isinstance(token, Token))
            raise self._fail(
                f"unknown attribute {written!r}",
                first.line or 1,
                first.column or 1,
                then=f"; the known attributes are {KNOWN_TEXT}",
            )
        self.attributes.append(canonical)
        return canonical, canonical in BOOLEAN_ATTRIBUTES

    def _literal(self, token: Token, name: str, boolean: bool, *, allow_null: bool) -> object:
        kind = token.type
        line, column = token.line or 1, token.column or 1
        if kind == "NULL":
            if not allow_null:
                raise self._fail("null is compared with eq or ne only", line, column)
            return None
        if kind in ("TRUE", "FALSE"):
            if not boolean:
                raise self._fail(f"{name} is text: compare it with a string in single quotes", line, column)
            return kind == "TRUE"
        if boolean:
            raise self._fail(f"{name} is true or false, not text", line, column)
        return str(token)[1:-1].replace("''", "'").casefold()


def _names(parts: Sequence[Clause]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for part in parts for name in part.attributes))


__all__ = [
    "ATTRIBUTES",
    "BOOLEAN_ATTRIBUTES",
    "TEXT_ATTRIBUTES",
    "Clause",
    "FilterError",
    "ScopeFilter",
    "parse_filter",
    "shown",
]
