"""TokenService over gRPC: decode, call the core's TokenService, encode; the secret only once."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Final

from tidings.v1 import tokens_pb2, tokens_pb2_grpc
from tidings_server.domain.errors import InvalidArgument
from tidings_server.domain.tokens import EVERYTHING, Issued, Reach, Role, Token, TokenService, parse_reach
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.convert import timestamp
from tidings_server.grpc_api.servicers import Context, Servicer

ROLE_VALUES: Final[Mapping[Role, tokens_pb2.Role.ValueType]] = {
    Role.OWNER: tokens_pb2.ROLE_OWNER,
    Role.ADMIN: tokens_pb2.ROLE_ADMIN,
    Role.VIEWER: tokens_pb2.ROLE_VIEWER,
    Role.PUBLISHER: tokens_pb2.ROLE_PUBLISHER,
}
ROLES: Final[Mapping[int, Role]] = {int(v): r for r, v in ROLE_VALUES.items()}
CERT_FIELDS: Final = ("token.client_cert_name", "token.display_name")


def role(field: str, value: int) -> Role:
    found = ROLES.get(value)
    if found is None:
        raise InvalidArgument(f"{field}: required; one of ROLE_OWNER, ROLE_ADMIN, ROLE_VIEWER, ROLE_PUBLISHER")
    return found


def reach(field: str, value: str) -> Reach:
    return EVERYTHING if not value else parse_reach(field, value)


def token(value: Token, secret: str = "") -> tokens_pb2.Token:
    message = tokens_pb2.Token(
        name=value.name,
        display_name=value.display_name,
        role=ROLE_VALUES[value.role],
        scope=str(value.scope),
        secret=secret,
        create_time=timestamp(value.create_time),
        client_cert_name=value.client_cert_name or "",
    )
    if value.last_used_time is not None:
        message.last_used_time.CopyFrom(timestamp(value.last_used_time))
    if value.revoke_time is not None:
        message.revoke_time.CopyFrom(timestamp(value.revoke_time))
    return message


class TokenServicer(Servicer, tokens_pb2_grpc.TokenServiceServicer):
    def __init__(self, bridge: TrioBridge, tokens: TokenService) -> None:
        super().__init__(bridge)
        self._tokens = tokens

    async def CreateToken(  # noqa: N802 - gRPC method names
        self, request: tokens_pb2.CreateTokenRequest, context: Context
    ) -> tokens_pb2.Token:
        given = request.token
        wanted_role = await self._decode(context, lambda: role("token.role", given.role))
        wanted_reach = await self._decode(context, lambda: reach("token.scope", given.scope))
        if given.client_cert_name:  # a principal for mutual-TLS client certificates: no secret
            create = partial(self._tokens.create_certificate_principal, fields=CERT_FIELDS)
            bound: Token = await self._call(
                context, create, given.display_name, wanted_role, wanted_reach, given.client_cert_name
            )
            return token(bound)
        issued: Issued = await self._call(
            context, self._tokens.create_token, given.display_name, wanted_role, wanted_reach
        )
        return token(issued.token, issued.secret)

    async def GetToken(self, request: tokens_pb2.GetTokenRequest, context: Context) -> tokens_pb2.Token:  # noqa: N802
        return token(await self._call(context, self._tokens.get_token, request.name))

    async def ListTokens(  # noqa: N802
        self, request: tokens_pb2.ListTokensRequest, context: Context
    ) -> tokens_pb2.ListTokensResponse:
        page = await self._call(context, self._tokens.list_tokens, request.page_size, request.page_token)
        return tokens_pb2.ListTokensResponse(
            tokens=[token(t) for t in page.items], next_page_token=page.next_page_token
        )

    async def RevokeToken(  # noqa: N802
        self, request: tokens_pb2.RevokeTokenRequest, context: Context
    ) -> tokens_pb2.Token:
        return token(await self._call(context, self._tokens.revoke_token, request.name))
