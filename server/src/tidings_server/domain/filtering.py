"""List filters (AIP-160): a small typed subset, evaluated in Python or compiled to SQL.

Every List method shares one language. Each declares the fields it filters on as a
``Schema``, so a filter is checked against it while parsing: unknown fields, operators a
field cannot take and ill-typed values fail with ``InvalidArgument`` before a store is asked,
and every error names the 1-based character position it concerns.

Grammar, a subset of https://google.aip.dev/160::

    filter     = [expression]
    expression = factor {"AND" factor}
    factor     = term {"OR" term}
    term       = ("NOT" | "-") term | "(" expression ")" | comparison
    comparison = FIELD ("=" | "!=" | "<" | "<=" | ">" | ">=" | ":") value
    value      = "double quoted" | 'single quoted' | bare-word

Precedence is AIP-160's, the reverse of most languages: OR binds tighter than AND, so
``a AND b OR c`` means ``a AND (b OR c)``. NOT binds tightest. AND, OR and NOT are upper
case, as in AIP-160; ``and`` is an ordinary word.

Values take the type of their field (``FieldType``). Quoted strings understand the escapes
``\\\\ \\" \\' \\n \\r \\t``. ``:`` (has) means equality on string and enum fields. Timestamps
are quoted RFC 3339 with ``Z`` or an offset, so an instant is never guessed.

Left out on purpose: juxtaposition (``a = 1 b = 2`` is refused because it is more often a
forgotten operator than an intended AND), member traversal (``a.b``), functions, wildcards
and presence tests (``a:*``).

A record value of None (a delivery never answered has no ``response_status``) makes its
comparison unknown, as SQL NULL does: neither ``response_status = 200`` nor
``NOT response_status = 200`` matches it. ``evaluate`` applies the same three-valued logic as
SQL so that filtering in memory and in a store return the same records.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Literal, TypeAlias, assert_never

from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.quoting import quote

MAX_LENGTH: Final = 2000
MAX_COMPARISONS: Final = 50
# Counts parentheses and negations; it also bounds the recursion of parse, evaluate and to_sql.
MAX_DEPTH: Final = 20

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1


class Scalar(enum.Enum):
    """A field type that needs no parameters."""

    STRING = "string"
    INT = "int"
    TIMESTAMP = "timestamp"
    BOOL = "bool"


STRING: Final = Scalar.STRING
INT: Final = Scalar.INT
TIMESTAMP: Final = Scalar.TIMESTAMP
BOOL: Final = Scalar.BOOL


@dataclass(frozen=True, slots=True)
class Enum:
    """A field holding one of ``values``, written in filters in any case, bare or quoted.

    Parsed values are the spelling declared here, so records must hold that spelling too.
    """

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple) or not self.values:
            raise TypeError("Enum needs a non-empty tuple of values")
        if len({v.casefold() for v in self.values}) != len(self.values):
            raise ValueError(f"Enum values must differ other than in case: {self.values}")

    def canonical(self, text: str) -> str | None:
        folded = text.casefold()
        return next((v for v in self.values if v.casefold() == folded), None)


ENUM: Final = Enum  # the spelling that matches STRING, INT, TIMESTAMP and BOOL

FieldType: TypeAlias = Scalar | Enum
Schema: TypeAlias = Mapping[str, FieldType]
Op: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]
Value: TypeAlias = str | int | bool | datetime


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; ``:`` is parsed to ``=``, and ``value`` has the field's type."""

    field: str
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    """Every operand holds; n-ary because a chain of ANDs parses flat."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Some operand holds."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT x`` and ``-x`` alike."""

    operand: Expr


Expr: TypeAlias = Compare | And | Or | Not


# -- parsing ------------------------------------------------------------------------------

_KEYWORDS: Final = frozenset({"AND", "OR", "NOT"})
_ORDERING: Final = frozenset({"<", "<=", ">", ">="})
# A field name or keyword ends where an operator, quote, parenthesis or space begins.
_WORD = re.compile(r"[^\s()\"'=<>!:]+")
# A bare value may contain ':' so that an unquoted timestamp is read whole and refused clearly.
_BARE_VALUE = re.compile(r"[^\s()\"'=<>!]+")
_OPERATOR = re.compile(r"<=|>=|!=|=|<|>|:")
_INTEGER = re.compile(r"-?[0-9]+")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_ESCAPES: Final = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t"}
_OPERATORS_TEXT: Final = "=, !=, <, <=, >, >= or :"
_AS_OP: Final[Mapping[str, Op]] = {"=": "=", ":": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TIMESTAMP_EXAMPLE: Final = '"2024-05-01T12:00:00Z"'


def parse(text: str, schema: Schema) -> Expr | None:
    """Parse ``text`` against ``schema``; None for an empty filter, which matches everything."""
    if len(text) > MAX_LENGTH:
        raise InvalidArgument(f"filter: {len(text)} characters is longer than the {MAX_LENGTH} allowed")
    if not text.strip():
        return None
    return _Parser(text, schema).parse()


class _Parser:
    """Recursive descent that scans as it goes, since '-' and ':' mean different things by place."""

    def __init__(self, text: str, schema: Schema) -> None:
        self.text = text
        self.schema = schema
        self.i = 0
        self.comparisons = 0

    def parse(self) -> Expr:
        expr = self.expression(None, 0)
        self.skip_space()
        if self.i < len(self.text):
            if self.text[self.i] == ")":
                raise self.error(self.i, "unbalanced parenthesis")
            raise self.error(self.i, f"expected AND, OR or the end of the filter, found {self.found()}")
        return expr

    def expression(self, after: str | None, depth: int) -> Expr:
        operands = [self.factor(after, depth)]
        while self.keyword("AND"):
            operands.append(self.factor("'AND'", depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def factor(self, after: str | None, depth: int) -> Expr:
        operands = [self.term(after, depth)]
        while self.keyword("OR"):
            operands.append(self.term("'OR'", depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def term(self, after: str | None, depth: int) -> Expr:
        self.skip_space()
        start = self.i
        if start == len(self.text):
            raise self.error(start, f"expected a comparison after {after}")
        char = self.text[start]
        word = _WORD.match(self.text, start)
        if char == "-":
            self.check_depth(start, depth)
            self.i = start + 1
            return Not(self.term("'-'", depth + 1))
        if word is not None and word[0] == "NOT":
            self.check_depth(start, depth)
            self.i = word.end()
            return Not(self.term("'NOT'", depth + 1))
        if char == "(":
            self.check_depth(start, depth)
            self.i = start + 1
            inner = self.expression("'('", depth + 1)
            self.skip_space()
            if self.i == len(self.text):
                raise self.error(start, "unbalanced parenthesis")
            if self.text[self.i] != ")":
                raise self.error(self.i, f"expected AND, OR or ')', found {self.found()}")
            self.i += 1
            return inner
        if word is None or word[0] in _KEYWORDS:
            where = "" if after is None else f" after {after}"
            raise self.error(start, f"expected a comparison{where}, found {self.found()}")
        self.i = word.end()
        return self.comparison(start, word[0])

    def comparison(self, start: int, name: str) -> Compare:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(start, f"more than {MAX_COMPARISONS} comparisons; at most {MAX_COMPARISONS} are allowed")
        ftype = self.schema.get(name)
        if ftype is None:
            known = ", ".join(sorted(self.schema))
            raise self.error(start, f"unknown field {quote(name)}{_case_hint(name)}; known fields: {known}")
        self.skip_space()
        op_at = self.i
        match = _OPERATOR.match(self.text, op_at)
        if match is None:
            found = "" if op_at == len(self.text) else f", found {self.found()}"
            raise self.error(op_at, f"expected an operator ({_OPERATORS_TEXT}) after {quote(name)}{found}")
        op = match[0]
        self.check_operator(op_at, op, name, ftype)
        self.i = match.end()
        self.skip_space()
        value_at = self.i
        raw, quoted = self.value(op)
        return Compare(name, _AS_OP[op], self.convert(value_at, raw, quoted, name, ftype))

    def check_operator(self, at: int, op: str, name: str, ftype: FieldType) -> None:
        kind = "enum" if isinstance(ftype, Enum) else ftype.value
        if op in _ORDERING and ftype not in (STRING, INT, TIMESTAMP):
            raise self.error(at, f"operator {quote(op)} is not allowed on {kind} field {quote(name)}; use = or !=")
        if op == ":" and ftype is not STRING and not isinstance(ftype, Enum):
            raise self.error(at, f"operator ':' is not allowed on {kind} field {quote(name)}; use =")

    def convert(self, at: int, raw: str, quoted: bool, name: str, ftype: FieldType) -> Value:
        """Give a value its field's type; quoting matters only to timestamps."""

        def invalid(expected: str) -> InvalidArgument:
            return self.error(at, f"{quote(raw)} is not a valid {name}; expected {expected}")

        if isinstance(ftype, Enum):
            canonical = ftype.canonical(raw)
            if canonical is None:
                raise invalid("one of " + ", ".join(sorted(ftype.values)))
            return canonical
        if ftype is Scalar.STRING:
            return raw
        if ftype is Scalar.INT:
            if not _INTEGER.fullmatch(raw):
                raise invalid("an integer")
            number = int(raw)
            if not _INT_MIN <= number <= _INT_MAX:
                raise invalid(f"an integer from {_INT_MIN} to {_INT_MAX}")
            return number
        if ftype is Scalar.BOOL:
            if raw.lower() not in ("true", "false"):
                raise invalid("true or false")
            return raw.lower() == "true"
        if ftype is Scalar.TIMESTAMP:
            if not quoted:
                raise self.error(at, f"timestamps must be quoted, as in {name} > {_TIMESTAMP_EXAMPLE}")
            return _timestamp(raw, invalid)
        assert_never(ftype)

    def value(self, op: str) -> tuple[str, bool]:
        at = self.i
        if at < len(self.text) and self.text[at] in "\"'":
            return self.string(), True
        match = _BARE_VALUE.match(self.text, at)
        if match is None:
            found = "" if at == len(self.text) else f", found {self.found()}"
            raise self.error(at, f"expected a value after {quote(op)}{found}")
        word = match[0]
        if word in _KEYWORDS:
            raise self.error(at, f"expected a value after {quote(op)}, found {quote(word)}; quote it to mean the word")
        if "*" in word:
            raise self.error(at, "wildcards are not supported; quote the value to match '*' literally")
        self.i = match.end()
        return word, False

    def string(self) -> str:
        start = self.i
        quote = self.text[start]
        out: list[str] = []
        i = start + 1
        while i < len(self.text):
            char = self.text[i]
            if char == quote:
                self.i = i + 1
                return "".join(out)
            if char == "\\" and i + 1 < len(self.text):
                escaped = _ESCAPES.get(self.text[i + 1])
                if escaped is None:
                    known = " ".join("\\" + e for e in _ESCAPES)
                    raise self.error(i, f"unknown escape '\\{self.text[i + 1]}'; known escapes: {known}")
                out.append(escaped)
                i += 2
                continue
            out.append(char)
            i += 1
        raise self.error(start, f"unterminated string; close it with {quote}")

    def keyword(self, word: str) -> bool:
        self.skip_space()
        match = _WORD.match(self.text, self.i)
        if match is None or match[0] != word:
            return False
        self.i = match.end()
        return True

    def check_depth(self, at: int, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise self.error(
                at, f"nested more than {MAX_DEPTH} levels deep (parentheses and negations); simplify the filter"
            )

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def found(self) -> str:
        """What stands at the cursor, for 'expected X, found Y' messages."""
        if self.i >= len(self.text):
            return "the end of the filter"
        match = _WORD.match(self.text, self.i)
        if match is not None:
            return quote(match[0]) + _case_hint(match[0])
        char = self.text[self.i]
        if char in "\"'":
            return "a quoted string"
        operator_match = _OPERATOR.match(self.text, self.i)
        return quote(operator_match[0] if operator_match else char)

    def error(self, at: int, problem: str) -> InvalidArgument:
        return InvalidArgument(f"filter: at position {at + 1}: {problem}")


def _timestamp(raw: str, invalid: Callable[[str], InvalidArgument]) -> datetime:
    match = _TIMESTAMP.fullmatch(raw)
    if match is None:
        raise invalid(f"an RFC 3339 timestamp such as {_TIMESTAMP_EXAMPLE}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if zulu is None and sign is None:
        raise invalid("a UTC offset at the end, Z or one such as +02:00")
    if sign is not None and (int(off_h) > 23 or int(off_m) > 59):
        raise invalid("a UTC offset from -23:59 to +23:59")
    offset = timedelta(0) if zulu else int(sign + "1") * timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, timezone(offset))
    except ValueError as e:
        raise invalid(f"a real date and time ({e})") from None


def _case_hint(word: str) -> str:
    if word.upper() in _KEYWORDS and word not in _KEYWORDS:
        return " (AND, OR and NOT must be upper case)"
    return ""


# -- evaluation -----------------------------------------------------------------------------

_PYTHON_OPS: Final[Mapping[str, Callable[[Value, Value], object]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(expr: Expr | None, record: Mapping[str, object]) -> bool:
    """Whether ``record`` matches; None (the empty filter) matches every record.

    ``record`` maps every field the filter uses to a value of the field's type (enum values
    spelled as declared, timestamps aware) or to None; anything else is a programming error
    and raises TypeError rather than silently never matching.
    """
    return expr is None or _truth(expr, record) is True


def _truth(expr: Expr, record: Mapping[str, object]) -> bool | None:
    """Kleene's three-valued logic, None meaning unknown, exactly as SQL treats NULL."""
    if isinstance(expr, Compare):
        actual = record[expr.field]
        if actual is None:
            return None
        return bool(_PYTHON_OPS[expr.op](_typed(expr.field, actual, expr.value), expr.value))
    if isinstance(expr, Not):
        inner = _truth(expr.operand, record)
        return None if inner is None else not inner
    results = [_truth(e, record) for e in expr.operands]
    decisive = isinstance(expr, Or)
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def _typed(field: str, actual: object, expected: Value) -> Value:
    if isinstance(expected, bool):
        if isinstance(actual, bool):
            return actual
    elif isinstance(expected, int):
        if isinstance(actual, int) and not isinstance(actual, bool):
            return actual
    elif isinstance(expected, datetime):
        if isinstance(actual, datetime) and actual.utcoffset() is not None:
            return actual
    elif isinstance(actual, str):
        return actual
    raise TypeError(f"filter field {field!r}: record holds {actual!r}, not a value like {expected!r}")


def fields_used(expr: Expr | None) -> set[str]:
    """The fields a filter reads, e.g. to load only those or to check a store can index them."""
    return {c.field for c in _comparisons(expr)} if expr is not None else set()


def _comparisons(expr: Expr) -> Iterator[Compare]:
    if isinstance(expr, Compare):
        yield expr
    elif isinstance(expr, Not):
        yield from _comparisons(expr.operand)
    else:
        for operand in expr.operands:
            yield from _comparisons(operand)


# -- SQL ------------------------------------------------------------------------------------


def to_sql(
    expr: Expr | None,
    columns: Mapping[str, str],
    convert: Callable[[str, object], object] | None = None,
) -> tuple[str, list[object]]:
    """Compile to a WHERE fragment with ``?`` placeholders and its parameters, in order.

    Values only ever travel as parameters. ``columns`` maps each field to the SQL text of its
    column and is inserted verbatim, so it must come from code, never from a request. Values
    are passed as parsed (datetimes aware, enum values as declared); ``convert(field, value)``
    turns them into what the column holds, e.g. a timestamp into the store's text format.
    Compound parts are parenthesized so the fragment can be joined to others with AND; None
    (the empty filter) compiles to ``1 = 1``. NULL columns behave as ``evaluate`` documents.
    ``<`` and ``>`` on strings agree with ``evaluate`` only under a code-point (binary)
    collation, which SQLite uses by default; elsewhere give the column e.g. ``COLLATE "C"``.
    """
    if expr is None:
        return "1 = 1", []
    missing = fields_used(expr) - columns.keys()
    if missing:
        raise ValueError(f"to_sql: no column given for {', '.join(sorted(missing))}")
    params: list[object] = []

    def render(e: Expr) -> str:
        if isinstance(e, Compare):
            params.append(e.value if convert is None else convert(e.field, e.value))
            return f"{columns[e.field]} {'<>' if e.op == '!=' else e.op} ?"
        if isinstance(e, Not):
            inner = render(e.operand)
            return f"NOT ({inner})" if isinstance(e.operand, Compare) else f"NOT {inner}"
        joiner = " AND " if isinstance(e, And) else " OR "
        return "(" + joiner.join(render(o) for o in e.operands) + ")"

    return render(expr), params
