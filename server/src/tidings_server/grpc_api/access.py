"""Applies the policy table (domain/access.py) to every call: the one place access is enforced.

Each method handler is wrapped where it is registered (``decoding.register``): the wrapper sees
the parsed request, authenticates the ``authorization: Bearer …`` metadata (or, without one, a
verified client certificate bound to a principal), reads the resources
the table names from the request, and refuses the call before the method runs, so a refused
call changes nothing. An interceptor is the second net: a method registered some other way
(reflection) or added later without a table entry is refused unless the table lists it.

With auth off (``--no-auth``, loopback only) every caller is let through unauthenticated, but a
method missing from the table is still refused, and changes are still logged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, NoReturn

import grpc

from tidings_server.domain.access import POLICY, Each, Named, Rule, authorize, reach_of, reach_of_ids
from tidings_server.domain.errors import TidingsError
from tidings_server.domain.tokens import Reach, Token, TokenService
from tidings_server.grpc_api.bridge import TrioBridge
from tidings_server.grpc_api.errors import status_for
from tidings_server.grpc_api.tls import peer_certificate

log = logging.getLogger(__name__)
audit_log = logging.getLogger("tidings_server.audit")
Context = grpc.aio.ServicerContext[Any, Any]
NO_CREDENTIALS = (
    "no credentials: send the metadata `authorization: Bearer <token>` (tidings --token, TIDINGS_TOKEN,"
    " or a profile's token)"
)
NO_CERT_PRINCIPAL = "no live principal is bound to the client certificate's names"
BAD_CREDENTIALS = "the bearer token is unknown or revoked"


def _field(message: object, path: str) -> Any:
    value = message
    for part in path.split("."):
        value = getattr(value, part)
    return value


def targets(rule: Rule, request: object) -> Iterator[tuple[str, Reach]]:
    """The resources ``request`` names, as the rule says where to find them: (where, reach)."""
    for target in rule.targets:
        if isinstance(target, Named):
            name = _field(request, target.path)
            if name:
                yield target.path, reach_of(name)
        elif isinstance(target, Each):
            for i, item in enumerate(_field(request, target.path)):
                yield f"{target.path}[{i}]", reach_of_ids(_field(item, target.company), _field(item, target.project))


def _setting(rule: Rule, request: object) -> list[str]:
    """The items of a ``changes_when`` rule's request that make it a change, as
    ``path[i].field=value``; [] when the call changes nothing of the control plane."""
    when = rule.changes_when
    if when is None:
        return []
    items = enumerate(_field(request, when.path))
    return [f"{when.path}[{i}].{when.field}={value}" for i, item in items if (value := _field(item, when.field))]


def _resource(rule: Rule, request: object, response: object) -> str:
    """What a change was made to, for the audit line: the response's name, else the request's."""
    if setting := _setting(rule, request):
        return ",".join(setting)
    name = getattr(response, "name", "")
    if isinstance(name, str) and name:
        return name
    named = [_field(request, t.path) for t in rule.targets if isinstance(t, Named)]
    return ",".join(n for n in named if n)


class Guard:
    """Authenticates and authorizes calls; ``tokens`` None means auth is off."""

    def __init__(self, bridge: TrioBridge, tokens: TokenService | None) -> None:
        self._bridge = bridge
        self._tokens = tokens
        self.guarded: set[str] = set()  # the methods wrapped here; the interceptor refuses any other

    def wrap(self, method: str, handler: Any) -> Any:
        """``handler`` (a grpc.RpcMethodHandler taking the parsed request) behind the policy."""
        rule = POLICY.get(method)
        if rule is None:
            return _refusing(handler, method)
        if rule.permission is None:
            return handler
        if handler.request_streaming:  # no such method in the API; refused rather than unchecked
            return _refusing(handler, method)
        self.guarded.add(method)
        if not handler.response_streaming:
            unary = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                principal = await self._admit(method, rule, request, context)
                return await self._audited(method, rule, request, principal, unary(request, context))

            return handler._replace(unary_unary=unary_unary)
        stream = handler.unary_stream
        if inspect.isasyncgenfunction(stream):

            async def stream_items(request: Any, context: Context) -> AsyncIterator[Any]:
                await self._admit(method, rule, request, context)
                async for item in stream(request, context):
                    yield item

            return handler._replace(unary_stream=stream_items)

        async def stream_writes(request: Any, context: Context) -> None:
            await self._admit(method, rule, request, context)
            await stream(request, context)

        return handler._replace(unary_stream=stream_writes)

    async def _admit(self, method: str, rule: Rule, request: Any, context: Context) -> Token | None:
        """The caller's token if it may make this call; otherwise the call is aborted.

        A bearer token, when sent, decides alone (a certificate never rescues a bad token).
        Without one, a verified client certificate is looked up by its common name, then its
        SANs; one bound to no live principal is told the same as a caller with nothing."""
        if self._tokens is None:
            return None
        secret = _bearer(context)
        try:
            if secret is not None:
                token = await self._bridge.call(self._tokens.authenticate, secret)
                reason = BAD_CREDENTIALS
            else:
                peer = peer_certificate(context)
                if peer is None:
                    await _abort(context, grpc.StatusCode.UNAUTHENTICATED, NO_CREDENTIALS)
                names = ([peer.common_name] if peer.common_name else []) + list(peer.alt_names)
                token = await self._bridge.call(self._tokens.authenticate_certificate, names)
                reason = NO_CERT_PRINCIPAL
        except TidingsError as exc:
            await _abort(context, status_for(exc), str(exc))
        if token is None:
            log.warning("refused a call", extra={"method": method, "reason": reason})
            await _abort(context, grpc.StatusCode.UNAUTHENTICATED, BAD_CREDENTIALS if secret else NO_CREDENTIALS)
        denied = authorize(token, method, rule, targets(rule, request))
        if denied is not None:
            log.warning(
                "refused a call",
                extra={"method": method, "principal": token.token_id, "reason": denied.message},
            )
            await _abort(context, grpc.StatusCode.PERMISSION_DENIED, denied.message)
        return token

    async def _audited(
        self, method: str, rule: Rule, request: Any, principal: Token | None, call: Awaitable[Any]
    ) -> Any:
        """Run the call; a control-plane change is logged as one line, whatever its outcome."""
        if not rule.changes and not _setting(rule, request):
            return await call
        who = {"principal": "none (--no-auth)", "principal_name": ""}
        if principal is not None:
            who = {"principal": principal.name, "principal_name": principal.display_name}
        response: Any = None
        outcome = "failed"
        try:
            response = await call
            outcome = "ok"
            return response
        finally:
            audit_log.info(
                "control-plane change",
                extra={
                    **who,
                    "method": method.rsplit("/", 1)[-1],
                    "resource": _resource(rule, request, response),
                    "outcome": outcome,
                },
            )


def _bearer(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, secret = value.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


def _refusal(method: str) -> str:
    return (
        f"{method}: the method is not in the access policy (or was registered around its guard), so nobody may call it"
    )


def _refusing(handler: Any, method: str) -> Any:
    """A handler of the same shape that refuses every call: what the table does not list."""

    async def refuse(request: Any, context: Context) -> Any:
        await _abort(context, grpc.StatusCode.PERMISSION_DENIED, _refusal(method))

    if handler.request_streaming and handler.response_streaming:
        return handler._replace(stream_stream=refuse)
    if handler.request_streaming:
        return handler._replace(stream_unary=refuse)
    if handler.response_streaming:
        return handler._replace(unary_stream=refuse)
    return handler._replace(unary_unary=refuse)


class PolicyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses any method the policy table does not list, however it was registered, and any
    method the table guards that was registered without passing through ``guard``."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            return handler  # an unknown method stays UNIMPLEMENTED
        rule = POLICY.get(method)
        if rule is not None and (rule.permission is None or method in self._guard.guarded):
            return handler
        refused: grpc.RpcMethodHandler[Any, Any] = _refusing(handler, method)
        return refused
