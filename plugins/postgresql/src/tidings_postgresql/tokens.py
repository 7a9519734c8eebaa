"""The PostgreSQL store's token SQL: principals kept by the hash of their secret, shared by
every server of the cluster (a revocation on one holds on all from their next call).

Each function is the body of one transaction, as in ``cluster``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import psycopg

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.tokens import Role, Token, parse_reach

_COLUMNS: Final = "token_id, display_name, role, scope, secret_hash, create_time, last_used_time, revoke_time"
_INSERT: Final = f"INSERT INTO tokens ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
_BY_ID: Final = f"SELECT {_COLUMNS} FROM tokens WHERE token_id = %s"
_BY_HASH: Final = f"SELECT {_COLUMNS} FROM tokens WHERE secret_hash = %s"
_LIST: Final = f"SELECT {_COLUMNS} FROM tokens WHERE token_id > %s ORDER BY token_id LIMIT %s"
_REVOKE: Final = "UPDATE tokens SET revoke_time = %s WHERE token_id = %s AND revoke_time IS NULL"
_TOUCH: Final = """
    UPDATE tokens SET last_used_time = %s WHERE token_id = %s AND (last_used_time IS NULL OR last_used_time < %s)
"""


def _token(row: Sequence[Any]) -> Token:
    return Token(row[0], row[1], Role(row[2]), parse_reach("scope", row[3]), row[4], row[5], row[6], row[7])


def create(conn: psycopg.Connection[Any], *, token: Token) -> None:
    row = (
        token.token_id,
        token.display_name,
        token.role.value,
        str(token.scope),
        token.secret_hash,
        token.create_time,
        token.last_used_time,
        token.revoke_time,
    )
    with conn.cursor() as cur:
        cur.execute(_INSERT, row)
        if cur.rowcount == 0:
            raise AlreadyExists(f"token tokens/{token.token_id} already exists")


def get(conn: psycopg.Connection[Any], *, token_id: str) -> Token:
    row = conn.execute(_BY_ID, (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"token tokens/{token_id} does not exist")
    return _token(row)


def find(conn: psycopg.Connection[Any], *, secret_hash: str) -> Token | None:
    row = conn.execute(_BY_HASH, (secret_hash,)).fetchone()
    return None if row is None else _token(row)


def page(conn: psycopg.Connection[Any], *, after: str | None, limit: int) -> list[Token]:
    return [_token(row) for row in conn.execute(_LIST, (after or "", limit)).fetchall()]


def revoke(conn: psycopg.Connection[Any], *, token_id: str, now: datetime) -> Token:
    conn.execute(_REVOKE, (now, token_id))
    return get(conn, token_id=token_id)


def touch(conn: psycopg.Connection[Any], *, token_id: str, now: datetime) -> None:
    conn.execute(_TOUCH, (now, token_id, now))
