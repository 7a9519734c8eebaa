"""The filter language: what it accepts and means, how it compiles to SQL, and how it refuses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.filtering import (
    BOOL,
    INT,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_LENGTH,
    STRING,
    TIMESTAMP,
    And,
    Compare,
    Enum,
    Expr,
    Not,
    Or,
    Schema,
    evaluate,
    fields_used,
    parse,
    to_sql,
)
from tidings_server.domain.model import HookStatus

HOOKS: Schema = {"status": Enum(tuple(s.name for s in HookStatus)), "payload_format": STRING}

DELIVERIES: Schema = {
    "status": Enum(("PENDING", "SUCCEEDED", "FAILED")),
    "resource_name": STRING,
    "resource_id": INT,
    "event_type": STRING,
    "response_status": INT,
    "create_time": TIMESTAMP,
    "redelivered": BOOL,
}
COLUMNS = {field: field for field in DELIVERIES}


def _delivery(
    status: str,
    resource_name: str,
    resource_id: int,
    event_type: str,
    response_status: int | None,
    create_time: datetime,
    redelivered: bool,
) -> dict[str, object]:
    return {
        "status": status,
        "resource_name": resource_name,
        "resource_id": resource_id,
        "event_type": event_type,
        "response_status": response_status,
        "create_time": create_time,
        "redelivered": redelivered,
    }


RECORDS: dict[str, dict[str, object]] = {
    "d1": _delivery("SUCCEEDED", "RFIs", 10, "create", 200, datetime(2024, 5, 1, 12, tzinfo=UTC), False),
    "d2": _delivery("FAILED", "Submittals", 20, "update", 500, datetime(2024, 5, 2, 8, 30, tzinfo=UTC), True),
    # Never answered: its response_status is NULL in the store.
    "d3": _delivery("PENDING", "RFIs", 30, "delete", None, datetime(2024, 5, 3, tzinfo=UTC), False),
    "d4": _delivery(
        "SUCCEEDED", "Budget View Snapshots", -5, "update", 204, datetime(2024, 4, 30, 23, 59, 59, 500000, UTC), True
    ),
    "d5": _delivery("FAILED", 'Quote "x" and \\ slash', 40, "it's", 404, datetime(2024, 5, 4, tzinfo=UTC), False),
}
ALL = set(RECORDS)

GOOD: list[tuple[str, set[str]]] = [
    ("", ALL),
    ("   \t\n", ALL),
    ("status = SUCCEEDED", {"d1", "d4"}),
    ("status = succeeded", {"d1", "d4"}),
    ('status = "Failed"', {"d2", "d5"}),
    ("status=FAILED", {"d2", "d5"}),
    ("status != PENDING", ALL - {"d3"}),
    ("status:FAILED", {"d2", "d5"}),
    ("resource_name = RFIs", {"d1", "d3"}),
    ('resource_name : "RFIs"', {"d1", "d3"}),
    ("resource_name = 'Budget View Snapshots'", {"d4"}),
    ('resource_name = "rfis"', set()),
    ('resource_name < "R"', {"d4", "d5"}),
    ("resource_id > 10", {"d2", "d3", "d5"}),
    ("resource_id = -5", {"d4"}),
    ('resource_id = "20"', {"d2"}),
    ("resource_id >= -5 AND resource_id <= 10", {"d1", "d4"}),
    ("response_status >= 500", {"d2"}),
    # A NULL response_status is unknown, never equal or unequal, in Python as in SQL.
    ("response_status != 200", {"d2", "d4", "d5"}),
    ("NOT response_status = 200", {"d2", "d4", "d5"}),
    ("response_status = 200 OR NOT response_status = 200", ALL - {"d3"}),
    ("response_status = 200 OR status = PENDING", {"d1", "d3"}),
    ("-status = PENDING", ALL - {"d3"}),
    ("NOT NOT status = PENDING", {"d3"}),
    ("NOT (status = FAILED OR status = PENDING)", {"d1", "d4"}),
    ("NOT(status = FAILED)", {"d1", "d3", "d4"}),
    ("redelivered = true", {"d2", "d4"}),
    ("redelivered = FALSE", {"d1", "d3", "d5"}),
    ("redelivered != true", {"d1", "d3", "d5"}),
    # Precedence: OR binds tighter than AND (AIP-160), so these read as A AND (B OR C).
    ("status = SUCCEEDED AND resource_id = 10 OR resource_id = 20", {"d1"}),
    ("resource_id = 20 OR resource_id = 10 AND status = SUCCEEDED", {"d1"}),
    ("(status = SUCCEEDED AND resource_id = 10) OR resource_id = 20", {"d1", "d2"}),
    ("status = FAILED\nAND\tresource_id>=40", {"d5"}),
    # Quoting and escapes.
    ('resource_name = "Quote \\"x\\" and \\\\ slash"', {"d5"}),
    ("resource_name = 'Quote \"x\" and \\\\ slash'", {"d5"}),
    ("event_type = 'it\\'s'", {"d5"}),
    ('event_type = "it\'s"', {"d5"}),
    ("event_type = 'AND'", set()),
    # Timestamps compare as instants whatever their offset; d1 is 12:00Z exactly.
    ('create_time > "2024-05-01T12:00:00Z"', {"d2", "d3", "d5"}),
    ('create_time >= "2024-05-01T14:00:00+02:00"', {"d1", "d2", "d3", "d5"}),
    ('create_time = "2024-05-01T08:00:00-04:00"', {"d1"}),
    ('create_time < "2024-04-30T19:59:59.6-04:00"', {"d4"}),
    ("create_time <= '2024-04-30t23:59:59.5z'", {"d4"}),
    ('create_time < "2024-05-01T00:00:00.000000001+00:00"', {"d4"}),
]


def _matching(expr: Expr | None) -> set[str]:
    return {key for key, record in RECORDS.items() if evaluate(expr, record)}


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_evaluate(text: str, expected: set[str]) -> None:
    assert _matching(parse(text, DELIVERIES)) == expected


def _iso(value: datetime) -> str:
    """Fixed-width UTC text, so that the store's text comparison orders instants."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_column(field: str, value: object) -> object:
    return _iso(value) if isinstance(value, datetime) else value


@pytest.fixture(scope="module")
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE deliveries (id TEXT PRIMARY KEY, status TEXT, resource_name TEXT, resource_id INTEGER,"
        " event_type TEXT, response_status INTEGER, create_time TEXT, redelivered INTEGER)"
    )
    for key, r in RECORDS.items():
        conn.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [key, *(_to_column(field, r[field]) for field in DELIVERIES)],
        )
    yield conn
    conn.close()


def _select(db: sqlite3.Connection, where: str, params: list[object]) -> set[str]:
    return {row[0] for row in db.execute(f"SELECT id FROM deliveries WHERE {where}", params)}


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_sql_matches_the_same_rows_as_evaluate(db: sqlite3.Connection, text: str, expected: set[str]) -> None:
    where, params = to_sql(parse(text, DELIVERIES), COLUMNS, _to_column)
    assert _select(db, where, params) == expected


@pytest.mark.parametrize(
    ("text", "sql", "params"),
    [
        ("status = failed", "status = ?", ["FAILED"]),
        ("response_status != 200", "response_status <> ?", [200]),
        (
            "status = SUCCEEDED AND resource_id = 10 OR resource_id = 20",
            "(status = ? AND (resource_id = ? OR resource_id = ?))",
            ["SUCCEEDED", 10, 20],
        ),
        ("NOT (status = FAILED OR status = PENDING)", "NOT (status = ? OR status = ?)", ["FAILED", "PENDING"]),
        ("-resource_id < 0", "NOT (resource_id < ?)", [0]),
        ("NOT -redelivered = true", "NOT NOT (redelivered = ?)", [True]),
        ('resource_name = "x\'; DROP TABLE deliveries; --"', "resource_name = ?", ["x'; DROP TABLE deliveries; --"]),
    ],
)
def test_to_sql(text: str, sql: str, params: list[object]) -> None:
    assert to_sql(parse(text, DELIVERIES), COLUMNS) == (sql, params)


def test_to_sql_passes_values_as_parameters_only(db: sqlite3.Connection) -> None:
    where, params = to_sql(parse('resource_name = "x\'; DROP TABLE deliveries; --"', DELIVERIES), COLUMNS)
    assert _select(db, where, params) == set()
    assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (len(RECORDS),)


def test_to_sql_uses_the_given_columns_and_converts_timestamps() -> None:
    expr = parse('status = PENDING AND create_time >= "2024-05-01T14:00:00+02:00"', DELIVERIES)
    plain = to_sql(expr, {"status": "d.state", "create_time": "d.created_at"})
    assert plain == (
        "(d.state = ? AND d.created_at >= ?)",
        ["PENDING", datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))],
    )
    converted = to_sql(expr, {"status": "d.state", "create_time": "d.created_at"}, _to_column)
    assert converted[1] == ["PENDING", "2024-05-01T12:00:00.000000Z"]


def test_to_sql_of_the_empty_filter_matches_everything(db: sqlite3.Connection) -> None:
    assert to_sql(None, COLUMNS) == ("1 = 1", [])
    assert _select(db, *to_sql(None, COLUMNS)) == ALL


def test_to_sql_refuses_a_field_without_a_column() -> None:
    with pytest.raises(ValueError, match="no column given for resource_id"):
        to_sql(parse("status = PENDING OR resource_id = 1", DELIVERIES), {"status": "status"})


def test_precedence_or_binds_tighter_than_and() -> None:
    a, b, c = (Compare("resource_id", "=", n) for n in (1, 2, 3))
    assert parse("resource_id = 1 AND resource_id = 2 OR resource_id = 3", DELIVERIES) == And((a, Or((b, c))))
    assert parse("resource_id = 1 OR resource_id = 2 AND resource_id = 3", DELIVERIES) == And((Or((a, b)), c))
    assert parse("NOT resource_id = 1 OR resource_id = 2", DELIVERIES) == Or((Not(a), b))
    assert parse("(resource_id = 1 AND resource_id = 2) OR resource_id = 3", DELIVERIES) == Or((And((a, b)), c))


def test_values_take_their_field_type() -> None:
    expr = parse(
        "status : 'pending' AND resource_name: x AND resource_id = -7 AND redelivered = True"
        ' AND create_time = "2024-05-01T14:00:00.25+02:00"',
        DELIVERIES,
    )
    assert isinstance(expr, And)
    assert [c.value for c in expr.operands if isinstance(c, Compare)] == [
        "PENDING",
        "x",
        -7,
        True,
        datetime(2024, 5, 1, 12, 0, 0, 250000, UTC),
    ]
    moment = expr.operands[-1]
    assert isinstance(moment, Compare)
    assert isinstance(moment.value, datetime)
    assert moment.value.utcoffset() == timedelta(hours=2)
    assert [c.op for c in expr.operands if isinstance(c, Compare)] == ["=", "=", "=", "=", "="]


def test_fields_used() -> None:
    expr = parse("status = FAILED AND (resource_id > 3 OR NOT status = PENDING)", DELIVERIES)
    assert fields_used(expr) == {"status", "resource_id"}
    assert fields_used(None) == set()


def test_hook_filters() -> None:
    hooks = [{"status": "ACTIVE", "payload_format": "procore.v4"}, {"status": "PAUSED", "payload_format": "v2"}]
    expr = parse('status = active AND payload_format = "procore.v4"', HOOKS)
    assert [evaluate(expr, h) for h in hooks] == [True, False]


def test_evaluate_refuses_a_record_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="'status'"):
        evaluate(parse("status = ACTIVE", HOOKS), {"status": HookStatus.ACTIVE, "payload_format": "v2"})
    naive: Mapping[str, object] = {**RECORDS["d1"], "create_time": datetime(2024, 5, 1)}
    with pytest.raises(TypeError, match="'create_time'"):
        evaluate(parse('create_time > "2024-01-01T00:00:00Z"', DELIVERIES), naive)


def test_enum_declarations_are_checked() -> None:
    with pytest.raises(TypeError):
        Enum(())
    with pytest.raises(ValueError, match="differ"):
        Enum(("A", "a"))


def test_messages_the_hook_service_shows() -> None:
    cases = {
        "status=banana": "filter: at position 8: 'banana' is not a valid status; expected one of ACTIVE, DISABLED,"
        " PAUSED",
        "status = ACTIVE AND colour = red": "filter: at position 21: unknown field 'colour'; known fields:"
        " payload_format, status",
        "(status = ACTIVE": "filter: at position 1: unbalanced parenthesis",
        "status = ACTIVE OR status =": "filter: at position 28: expected a value after '='",
    }
    for text, message in cases.items():
        with pytest.raises(InvalidArgument) as caught:
            parse(text, HOOKS)
        assert str(caught.value) == message


BAD: list[tuple[str, int, str]] = [
    ("colour = red", 1, "unknown field 'colour'; known fields: create_time, event_type, redelivered,"),
    ("not status = PENDING", 1, "unknown field 'not' (AND, OR and NOT must be upper case)"),
    ("status", 7, "expected an operator (=, !=, <, <=, >, >= or :) after 'status'"),
    ("status ~ FAILED", 8, "expected an operator (=, !=, <, <=, >, >= or :) after 'status', found '~'"),
    ("status =", 9, "expected a value after '='"),
    ("status = )", 10, "expected a value after '=', found ')'"),
    ("status = AND", 10, "expected a value after '=', found 'AND'; quote it to mean the word"),
    ("status=banana", 8, "'banana' is not a valid status; expected one of FAILED, PENDING, SUCCEEDED"),
    ("status < FAILED", 8, "operator '<' is not allowed on enum field 'status'"),
    ("redelivered >= true", 13, "operator '>=' is not allowed on bool field 'redelivered'"),
    ("redelivered = yes", 15, "'yes' is not a valid redelivered; expected true or false"),
    ("resource_id:5", 12, "operator ':' is not allowed on int field 'resource_id'; use ="),
    ("resource_id = 1.5", 15, "'1.5' is not a valid resource_id; expected an integer"),
    ("resource_id = ten", 15, "'ten' is not a valid resource_id; expected an integer"),
    ("resource_id = 9223372036854775808", 15, "expected an integer from -9223372036854775808 to 9223372036854775807"),
    ("create_time > 2024-05-01T00:00:00Z", 15, "timestamps must be quoted"),
    ('create_time > "2024-05-01"', 15, "'2024-05-01' is not a valid create_time; expected an RFC 3339 timestamp"),
    ('create_time > "2024-05-01T00:00:00"', 15, "expected a UTC offset at the end, Z or one such as +02:00"),
    ('create_time > "2024-02-30T00:00:00Z"', 15, "expected a real date and time (day is out of range for month)"),
    ('create_time > "2024-05-01T00:00:00+24:00"', 15, "expected a UTC offset from -23:59 to +23:59"),
    ("(status = FAILED", 1, "unbalanced parenthesis"),
    ("status = FAILED)", 16, "unbalanced parenthesis"),
    ("((status = FAILED) OR (status = PENDING)", 1, "unbalanced parenthesis"),
    ("()", 2, "expected a comparison after '(', found ')'"),
    ("status = FAILED AND", 20, "expected a comparison after 'AND'"),
    ("status = FAILED OR OR status = PENDING", 20, "expected a comparison after 'OR', found 'OR'"),
    ("NOT", 4, "expected a comparison after 'NOT'"),
    ("- ", 3, "expected a comparison after '-'"),
    ("= FAILED", 1, "expected a comparison, found '='"),
    ('"status" = FAILED', 1, "expected a comparison, found a quoted string"),
    ("status = FAILED resource_id = 1", 17, "expected AND, OR or the end of the filter, found 'resource_id'"),
    ("status = FAILED and resource_id = 1", 17, "found 'and' (AND, OR and NOT must be upper case)"),
    ("(status = FAILED resource_id = 1)", 18, "expected AND, OR or ')', found 'resource_id'"),
    ('status = "FAILED', 10, 'unterminated string; close it with "'),
    ("event_type = 'it\\'", 14, "unterminated string; close it with '"),
    ('event_type = "a\\qb"', 16, "unknown escape '\\q'"),
    ("event_type = x*", 14, "wildcards are not supported"),
    ("resource_name:*", 15, "wildcards are not supported"),
]


@pytest.mark.parametrize(("text", "position", "problem"), BAD)
def test_refused(text: str, position: int, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(text, DELIVERIES)
    message = str(caught.value)
    assert message.startswith(f"filter: at position {position}: ")
    assert problem in message


def test_length_limit() -> None:
    longest = "status = FAILED".ljust(MAX_LENGTH)
    assert parse(longest, DELIVERIES) == Compare("status", "=", "FAILED")
    with pytest.raises(InvalidArgument) as caught:
        parse(longest + " ", DELIVERIES)
    assert str(caught.value) == f"filter: {MAX_LENGTH + 1} characters is longer than the {MAX_LENGTH} allowed"


def test_comparison_limit() -> None:
    most = " OR ".join(["resource_id = 1"] * MAX_COMPARISONS)
    assert isinstance(parse(most, DELIVERIES), Or)
    with pytest.raises(InvalidArgument) as caught:
        parse(most + " OR resource_id = 1", DELIVERIES)
    assert str(caught.value) == (
        f"filter: at position {len(most) + 5}: more than {MAX_COMPARISONS} comparisons;"
        f" at most {MAX_COMPARISONS} are allowed"
    )


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("(", ")"), ("NOT ", ""), ("-", ""), ("NOT (", ")")],
)
def test_depth_limit(opening: str, closing: str) -> None:
    levels = MAX_DEPTH if opening != "NOT (" else MAX_DEPTH // 2
    deepest = opening * levels + "status = FAILED" + closing * levels
    assert fields_used(parse(deepest, DELIVERIES)) == {"status"}
    with pytest.raises(InvalidArgument) as caught:
        parse(opening + deepest + closing, DELIVERIES)
    assert f"nested more than {MAX_DEPTH} levels deep" in str(caught.value)
    assert str(caught.value).startswith(f"filter: at position {len(opening) * levels + 1}: ")


def test_deep_negation_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(InvalidArgument, match="nested more than"):
        parse("-" * (MAX_LENGTH - 20) + "status = FAILED", DELIVERIES)
