"""TokenService's certificate principals against the memory store: found by a certificate's
names, never by a bearer secret, revoked like any token, and bound again after a revocation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings_server.domain.errors import AlreadyExists, InvalidArgument
from tidings_server.domain.tokens import EVERYTHING, MAX_CERT_NAME, Reach, Role, TokenService, hash_secret
from tidings_server.stores.memory import MemoryStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def service() -> TokenService:
    return TokenService(MemoryStore(), lambda: NOW)


async def test_a_certificate_principal_is_found_by_its_common_name_or_any_san() -> None:
    tokens = service()
    erp = await tokens.create_certificate_principal("erp sync", Role.ADMIN, Reach(1), "erp")
    spiffe = await tokens.create_certificate_principal("mesh", Role.VIEWER, EVERYTHING, "spiffe://corp/billing")
    assert erp.client_cert_name == "erp"
    assert spiffe.client_cert_name == "spiffe://corp/billing"
    found = await tokens.authenticate_certificate(["erp"])
    assert found is not None
    assert found.token_id == erp.token_id
    assert found.last_used_time == NOW
    by_san = await tokens.authenticate_certificate(["unbound", "billing.corp", "spiffe://corp/billing"])
    assert by_san is not None
    assert by_san.token_id == spiffe.token_id
    # The common name comes first: the first name that is bound decides.
    first = await tokens.authenticate_certificate(["spiffe://corp/billing", "erp"])
    assert first is not None
    assert first.token_id == spiffe.token_id
    assert await tokens.authenticate_certificate(["erp2", "ERP", ""]) is None
    assert await tokens.authenticate_certificate([]) is None


async def test_no_bearer_secret_reaches_a_certificate_principal() -> None:
    tokens = service()
    erp = await tokens.create_certificate_principal("erp sync", Role.OWNER, EVERYTHING, "erp")
    assert erp.secret_hash == hash_secret("x509:erp")
    for secret in ("x509:erp", "tdg_x509:erp", "erp", erp.display_name, "x509#2:erp"):
        assert await tokens.authenticate(secret) is None


async def test_a_revoked_binding_stops_at_once_and_the_name_can_be_bound_again() -> None:
    tokens = service()
    first = await tokens.create_certificate_principal("erp sync", Role.ADMIN, Reach(1), "erp")
    with pytest.raises(AlreadyExists, match=r"--client-cert-name: 'erp' is already bound to tokens/"):
        await tokens.create_certificate_principal("erp again", Role.ADMIN, Reach(1), "erp")
    await tokens.revoke_token(first.name)
    assert await tokens.authenticate_certificate(["erp"]) is None
    second = await tokens.create_certificate_principal("erp renewed", Role.VIEWER, Reach(1), "erp")
    assert second.client_cert_name == "erp"
    assert second.secret_hash == hash_secret("x509#2:erp")
    found = await tokens.authenticate_certificate(["erp"])
    assert found is not None
    assert found.token_id == second.token_id
    assert found.role is Role.VIEWER
    await tokens.revoke_token(second.name)
    assert await tokens.authenticate_certificate(["erp"]) is None
    listed = await tokens.list_tokens(10, "")
    assert {t.client_cert_name for t in listed.items} == {"erp"}


async def test_a_bearer_token_named_like_a_binding_is_not_taken_for_one() -> None:
    tokens = service()
    issued = await tokens.create_token("lookalike [x509:erp]", Role.ADMIN, EVERYTHING)
    assert issued.token.client_cert_name is None
    assert await tokens.authenticate_certificate(["erp"]) is None
    # A certificate name holding the marker itself is still read back whole.
    odd = await tokens.create_certificate_principal("odd", Role.VIEWER, EVERYTHING, "a [x509:b]")
    assert odd.client_cert_name == "a [x509:b]"


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "required"), ("   ", "required"), ("x" * (MAX_CERT_NAME + 1), f"more than {MAX_CERT_NAME}"),
     ("erp\n", "control character")],
)  # fmt: skip
async def test_a_bad_certificate_name_is_refused_naming_the_option(name: str, problem: str) -> None:
    tokens = service()
    with pytest.raises(InvalidArgument, match=f"^--client-cert-name: .*{problem}"):
        await tokens.create_certificate_principal("erp", Role.ADMIN, EVERYTHING, name)
    assert (await tokens.list_tokens(10, "")).items == []
