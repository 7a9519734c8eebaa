"""The SQLite store's token SQL: principals kept by the hash of their secret.

Each function is the body of one transaction, as in ``deliveries`` and ``nodes``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.tokens import Role, Token, parse_reach
from tidings_server.stores.sqlite.rows import from_micros, optional_time, to_micros

# Spelt out in full, as the rest of the SQLite SQL is; columns in the order token() reads them.
_INSERT = """
    INSERT INTO tokens (token_id, display_name, role, scope, secret_hash, create_time, last_used_time, revoke_time)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_CLASH = "SELECT 1 FROM tokens WHERE token_id = ? OR secret_hash = ?"
_BY_ID = """
    SELECT token_id, display_name, role, scope, secret_hash, create_time, last_used_time, revoke_time
    FROM tokens WHERE token_id = ?
"""
_BY_HASH = """
    SELECT token_id, display_name, role, scope, secret_hash, create_time, last_used_time, revoke_time
    FROM tokens WHERE secret_hash = ?
"""
_LIST = """
    SELECT token_id, display_name, role, scope, secret_hash, create_time, last_used_time, revoke_time
    FROM tokens WHERE token_id > ? ORDER BY token_id LIMIT ?
"""
_REVOKE = "UPDATE tokens SET revoke_time = ? WHERE token_id = ? AND revoke_time IS NULL"
_TOUCH = """
    UPDATE tokens SET last_used_time = ? WHERE token_id = ? AND (last_used_time IS NULL OR last_used_time < ?)
"""


def token(row: Sequence[Any]) -> Token:
    return Token(
        row[0],
        row[1],
        Role(row[2]),
        parse_reach("scope", row[3]),
        row[4],
        from_micros(row[5]),
        optional_time(row[6]),
        optional_time(row[7]),
    )


def token_row(t: Token) -> tuple[object, ...]:
    return (
        t.token_id,
        t.display_name,
        t.role.value,
        str(t.scope),
        t.secret_hash,
        to_micros("create_time", t.create_time),
        None if t.last_used_time is None else to_micros("last_used_time", t.last_used_time),
        None if t.revoke_time is None else to_micros("revoke_time", t.revoke_time),
    )


def create(conn: sqlite3.Connection, *, row: tuple[object, ...]) -> None:
    if conn.execute(_CLASH, (row[0], row[4])).fetchone() is not None:
        raise AlreadyExists(f"token tokens/{row[0]} already exists")
    conn.execute(_INSERT, row)


def get(conn: sqlite3.Connection, *, token_id: str) -> Token:
    row = conn.execute(_BY_ID, (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"token tokens/{token_id} does not exist")
    return token(row)


def find(conn: sqlite3.Connection, *, secret_hash: str) -> Token | None:
    row = conn.execute(_BY_HASH, (secret_hash,)).fetchone()
    return None if row is None else token(row)


def page(conn: sqlite3.Connection, *, after: str | None, limit: int) -> list[Token]:
    return [token(row) for row in conn.execute(_LIST, (after or "", limit))]


def revoke(conn: sqlite3.Connection, *, token_id: str, now: int) -> Token:
    conn.execute(_REVOKE, (now, token_id))
    return get(conn, token_id=token_id)


def touch(conn: sqlite3.Connection, *, token_id: str, now: int) -> None:
    conn.execute(_TOUCH, (now, token_id, now))
