"""Principals: bearer tokens with a role and a scope, and the service that issues and checks them.

A token's secret is ``tdg_`` and 32 bytes from ``secrets.token_urlsafe`` (256 bits), shown once
at creation and stored only as its SHA-256 hash. Checking a presented secret is a lookup by
that hash, not a comparison of secrets: the lookup's timing can tell an attacker at most
something about a hash of what they sent, and a hash of a 256-bit random value cannot be turned
back into a secret, so a constant-time compare would protect nothing. No salt or slow hash is
needed for the same reason: there is no low-entropy password to guess.

Every call re-reads the token from the store (one lookup by a unique key), so a revocation,
made by this process or any other sharing the store, holds from the very next call. No cache.

A principal can also be bound to a client certificate (``create_certificate_principal``): a
token row like any other, so it is listed, revoked and authorized the same way, with the store
port unchanged. Its ``secret_hash`` is the hash of a key in a namespace no bearer can reach
(``x509:NAME``, see ``certificate_key``): ``authenticate`` refuses every secret that does not
start with ``tdg_`` before it hashes anything, so no bearer secret can match the row, and the
row has no secret to leak. It is found instead by ``authenticate_certificate``, from the names
of a certificate the TLS layer already verified against the client CA.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tidings_server.domain import paging
from tidings_server.domain.errors import AlreadyExists, InvalidArgument
from tidings_server.domain.names import MAX_ID
from tidings_server.domain.quoting import quote

if TYPE_CHECKING:
    from tidings_server.domain.ports import Store

SECRET_PREFIX = "tdg_"  # noqa: S105 - a prefix that marks a tidings token, not a secret
SECRET_BYTES = 32  # 256 bits; the brief floor is 128
TOKEN_ID_RE = re.compile(r"[a-z0-9]{16}")
MAX_DISPLAY_NAME = 200
MAX_CERT_NAME = 128
"""The longest certificate name a principal binds (a common name is at most 64 by RFC 5280; SANs
such as SPIFFE URIs run longer)."""
CERT_PREFIX = "x509"
LAST_USED_EVERY = timedelta(minutes=1)
"""``last_used_time`` is written when the stored one is older than this: one write a minute per
token at most, not one per call."""


class Role(enum.Enum):
    """What a principal may do (domain/access.py maps each role to its permissions)."""

    OWNER = "owner"
    ADMIN = "admin"
    VIEWER = "viewer"
    PUBLISHER = "publisher"


@dataclass(frozen=True, slots=True)
class Reach:
    """A principal's scope: everything (no company), a company, or one project of a company."""

    company_id: int | None = None
    project_id: int | None = None

    def __str__(self) -> str:
        if self.company_id is None:
            return "all"
        if self.project_id is None:
            return f"companies/{self.company_id}"
        return f"companies/{self.company_id}/projects/{self.project_id}"

    def covers(self, other: Reach) -> bool:
        """Whether everything ``other`` reaches lies within this scope."""
        if self.company_id is None:
            return True
        if other.company_id != self.company_id:
            return False
        return self.project_id is None or other.project_id == self.project_id


EVERYTHING = Reach()
_REACH_RE = re.compile(r"companies/([1-9][0-9]{0,18})(?:/projects/([1-9][0-9]{0,18}))?")
REACH_FORMS = "all, companies/{company} or companies/{company}/projects/{project}"


def parse_reach(field: str, text: str) -> Reach:
    """A scope as written: ``all``, ``companies/{c}`` or ``companies/{c}/projects/{p}``."""
    if text == "all":
        return EVERYTHING
    m = _REACH_RE.fullmatch(text)
    if m is None or any(g is not None and int(g) > MAX_ID for g in m.groups()):
        raise InvalidArgument(f"{field}: {quote(text)} is not a valid scope; expected {REACH_FORMS}")
    return Reach(int(m[1]), None if m[2] is None else int(m[2]))


def parse_role(field: str, text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidArgument(f"{field}: {quote(text)} is not a role; expected one of {roles}") from None


@dataclass(frozen=True, slots=True)
class Token:
    """A principal as stored: never its secret, only the secret's hash."""

    token_id: str
    display_name: str
    role: Role
    scope: Reach
    secret_hash: str
    create_time: datetime
    last_used_time: datetime | None = None
    revoke_time: datetime | None = None

    @property
    def name(self) -> str:
        return f"tokens/{self.token_id}"

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    @property
    def client_cert_name(self) -> str | None:
        """The certificate name this principal is bound to, or None for a bearer token.

        Read from the key the display name ends with, and believed only if that key's hash is the
        row's ``secret_hash``: a bearer token whose display name merely looks alike has a random
        secret's hash, so it is never reported as certificate-bound.
        """
        if not self.display_name.endswith("]"):
            return None
        start = self.display_name.find(" [")
        while start != -1:  # every " [" the key may start at (the name itself may hold one)
            key = self.display_name[start + 2 : -1]
            marker, _, name = key.partition(":")
            if hash_secret(key) == self.secret_hash and (marker == CERT_PREFIX or marker.startswith(f"{CERT_PREFIX}#")):
                return name
            start = self.display_name.find(" [", start + 1)
        return None


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just created, with its secret: the only time the secret exists outside the caller."""

    token: Token
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def certificate_key(name: str, generation: int = 0) -> str:
    """What a certificate principal's ``secret_hash`` hashes: ``x509:NAME``, then ``x509#2:NAME``,
    ``x509#3:NAME``… for later bindings of the same name after revocations (a revoked row stays,
    and the hash is unique). None starts with ``tdg_``, so none is a secret a bearer may send,
    and the two forms never collide (``x509:`` against ``x509#``, and the number ends at the
    first colon)."""
    if generation == 0:
        return f"{CERT_PREFIX}:{name}"
    return f"{CERT_PREFIX}#{generation + 1}:{name}"


def _marked(display_name: str, key: str) -> str:
    """The stored display name of a certificate principal: what it says it is bound to, which
    ``Token.client_cert_name`` checks against the hash (so a bearer token named alike is not
    taken for one)."""
    return f"{display_name} [{key}]"


def parse_token_name(field: str, value: str) -> str:
    """The id in ``tokens/{token}``."""
    prefix = "tokens/"
    if not value.startswith(prefix) or not TOKEN_ID_RE.fullmatch(value[len(prefix) :]):
        raise InvalidArgument(f"{field}: {quote(value)} is not a valid token name; expected tokens/{{token}}")
    return value[len(prefix) :]


class TokenService:
    """Create, list, get and revoke tokens, and find the principal a presented secret belongs to."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    @staticmethod
    def _check_display_name(display_name: str) -> None:
        if not display_name.strip():
            raise InvalidArgument("token.display_name: required; say whose token this is (a service, a person)")
        if len(display_name) > MAX_DISPLAY_NAME:
            raise InvalidArgument(f"token.display_name: {len(display_name)} characters is more than {MAX_DISPLAY_NAME}")

    async def create_token(self, display_name: str, role: Role, scope: Reach) -> Issued:
        self._check_display_name(display_name)
        secret = new_secret()
        token = Token(secrets.token_hex(8), display_name, role, scope, hash_secret(secret), self._now())
        await self._store.create_token(token)
        return Issued(token, secret)

    async def create_certificate_principal(
        self,
        display_name: str,
        role: Role,
        scope: Reach,
        cert_name: str,
        *,
        fields: tuple[str, str] = ("--client-cert-name", "--name"),
    ) -> Token:
        """A principal that a caller presenting a verified client certificate whose common name
        or one of whose subject alternative names is ``cert_name`` authenticates as. It has no
        secret (see the module's docstring for why no bearer can ever match it). ``fields``
        names the certificate name and the display name in errors, as the caller spelled them
        (the store CLI's options, or the API's ``token.client_cert_name`` and
        ``token.display_name``)."""
        field, name_field = fields
        if not cert_name.strip():
            raise InvalidArgument(f"{field}: required; the certificate's common name or one of its SANs")
        if len(cert_name) > MAX_CERT_NAME:
            raise InvalidArgument(f"{field}: {len(cert_name)} characters is more than {MAX_CERT_NAME}")
        if any(not c.isprintable() for c in cert_name):
            raise InvalidArgument(f"{field}: {quote(cert_name)} holds a control character")
        generation = 0
        while (bound := await self._store.find_token(hash_secret(certificate_key(cert_name, generation)))) is not None:
            if not bound.revoked:
                raise AlreadyExists(f"{field}: {quote(cert_name)} is already bound to {bound.name}; revoke it first")
            generation += 1
        key = certificate_key(cert_name, generation)
        self._check_display_name(display_name)
        marked = _marked(display_name, key)
        if len(marked) > MAX_DISPLAY_NAME:
            raise InvalidArgument(
                f"{name_field}: {len(display_name)} characters is too long beside {field}"
                f" ({len(marked)} stored, more than {MAX_DISPLAY_NAME})"
            )
        token = Token(secrets.token_hex(8), marked, role, scope, hash_secret(key), self._now())
        await self._store.create_token(token)
        return token

    async def get_token(self, name: str) -> Token:
        return await self._store.get_token(parse_token_name("name", name))

    async def list_tokens(self, size: int, page_token: str) -> paging.Page[Token]:
        limit = paging.page_size(size)
        after = paging.decode_token(page_token, "tokens")
        found = await self._store.list_tokens(after=after, limit=limit + 1)
        return paging.cut(found, limit, lambda t: t.token_id, "tokens")

    async def revoke_token(self, name: str) -> Token:
        return await self._store.revoke_token(parse_token_name("name", name), self._now())

    async def authenticate(self, secret: str) -> Token | None:
        """The live token ``secret`` belongs to, or None (unknown or revoked: the caller is told
        the same either way)."""
        if not secret.startswith(SECRET_PREFIX):
            return None
        return await self._live(await self._store.find_token(hash_secret(secret)))

    async def authenticate_certificate(self, names: Iterable[str]) -> Token | None:
        """The live principal bound to the first of ``names`` (a verified certificate's common
        name, then its SANs) that has one, or None (none bound, or every binding revoked).

        Each name costs one lookup, plus one per earlier binding of it that was revoked
        (``x509:NAME``, ``x509#2:NAME``…, until a key that was never bound)."""
        for name in names:
            if not name or len(name) > MAX_CERT_NAME:
                continue
            generation = 0
            while (token := await self._store.find_token(hash_secret(certificate_key(name, generation)))) is not None:
                if not token.revoked:
                    return await self._live(token)
                generation += 1
        return None

    async def _live(self, token: Token | None) -> Token | None:
        """``token`` if it is live, its last use noted (at most once a minute)."""
        if token is None or token.revoked:
            return None
        now = self._now()
        if token.last_used_time is None or now - token.last_used_time >= LAST_USED_EVERY:
            await self._store.touch_token(token.token_id, now)
            token = replace(token, last_used_time=now)
        return token
