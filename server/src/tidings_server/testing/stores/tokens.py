"""The Store contract for principals: tokens found by the hash of their secret, listed by id,
revoked for good, their last use kept without ever going back in time."""

from __future__ import annotations

import dataclasses

import pytest

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.ports import Store
from tidings_server.domain.tokens import EVERYTHING, Reach, Role, Token, hash_secret
from tidings_server.testing.stores.samples import T0, T1, T2


def make_token(n: int, *, role: Role = Role.ADMIN, scope: Reach = EVERYTHING) -> Token:
    return Token(f"{n:016x}", f"service {n}", role, scope, hash_secret(f"tdg_secret-{n}"), T0)


class TokenStoreContract:
    """Inherit in a ``Test…`` class with a ``store`` fixture, as ``StoreContract`` is."""

    async def test_a_token_reads_back_by_id_and_by_hash_with_every_field(self, store: Store) -> None:
        token = make_token(1, role=Role.PUBLISHER, scope=Reach(7, 8))
        await store.create_token(token)
        assert await store.get_token(token.token_id) == token
        assert await store.find_token(hash_secret("tdg_secret-1")) == token
        assert await store.find_token(hash_secret("tdg_secret-2")) is None
        company = make_token(2, role=Role.VIEWER, scope=Reach(7))
        await store.create_token(company)
        assert await store.get_token(company.token_id) == company

    async def test_an_id_or_a_secret_hash_is_never_taken_twice(self, store: Store) -> None:
        await store.create_token(make_token(1))
        with pytest.raises(AlreadyExists):
            await store.create_token(dataclasses.replace(make_token(2), token_id=make_token(1).token_id))
        with pytest.raises(AlreadyExists):
            await store.create_token(dataclasses.replace(make_token(2), secret_hash=make_token(1).secret_hash))
        assert await store.list_tokens(after=None, limit=10) == [make_token(1)]

    async def test_unknown_tokens_are_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_token("0" * 16)
        with pytest.raises(NotFound):
            await store.revoke_token("0" * 16, T1)
        await store.touch_token("0" * 16, T1)  # not an error

    async def test_tokens_list_by_id_in_pages(self, store: Store) -> None:
        for n in (3, 1, 2):
            await store.create_token(make_token(n))
        assert [t.token_id for t in await store.list_tokens(after=None, limit=2)] == [
            make_token(1).token_id,
            make_token(2).token_id,
        ]
        assert await store.list_tokens(after=make_token(2).token_id, limit=2) == [make_token(3)]

    async def test_a_revocation_keeps_its_first_time_and_the_token_stays_listed(self, store: Store) -> None:
        await store.create_token(make_token(1))
        revoked = await store.revoke_token(make_token(1).token_id, T1)
        assert revoked == dataclasses.replace(make_token(1), revoke_time=T1)
        assert await store.revoke_token(make_token(1).token_id, T2) == revoked
        assert await store.find_token(make_token(1).secret_hash) == revoked
        assert await store.list_tokens(after=None, limit=5) == [revoked]

    async def test_last_use_only_moves_forward(self, store: Store) -> None:
        await store.create_token(make_token(1))
        await store.touch_token(make_token(1).token_id, T2)
        await store.touch_token(make_token(1).token_id, T1)
        assert (await store.get_token(make_token(1).token_id)).last_used_time == T2
