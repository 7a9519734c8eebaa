"""Every RPC × every role × in scope / out of scope, and every RPC with no token and with a
revoked one: the status code, and that the store is byte for byte what it was.

Requests that are let through are chosen to change nothing either (a hook id that exists, a
hook that does not, an empty token name), so the code they get proves the call reached the
method, and the snapshot proves the refused ones did not. In scope for the company-scoped
tokens is company 1 (its project 10); out of scope is company 2, whose resources exist too:
refused alike whether they exist or not (tests/auth/test_access.py compares the messages).
The token methods are for unscoped owners: in scope there is a token of scope ``all``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.auth.world import ROLES, World, build, code_of, event, hook, project, watch_code
from tests.harness import Api
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2, templates_pb2, tokens_pb2
from tidings_server.domain.access import POLICY

Code = grpc.StatusCode
MISSING = "0000000000000000"


# Who may call what, written from issue #11's words rather than read from the policy table, so
# that a wrong entry in the table fails here: owner everything; admin hooks, triggers,
# templates, redeliver, test sends and history; viewer reads hooks and history; publisher
# publishes. Reading the catalog goes with reading hooks.
WRITE = frozenset({"owner", "admin"})
READ = frozenset({"owner", "admin", "viewer"})
PUBLISH = frozenset({"owner", "publisher"})
TOKENS = frozenset({"owner"})
ROLES_BY_METHOD = {
    **{f"/tidings.v1.HookService/{m}": READ for m in ("GetHook", "ListHooks", "ListTriggers")},
    **{
        f"/tidings.v1.HookService/{m}": WRITE
        for m in (
            "CreateHook",
            "UpdateHook",
            "DeleteHook",
            "BatchCreateTriggers",
            "BatchDeleteTriggers",
            "RotateSigningSecret",
        )
    },
    "/tidings.v1.CatalogService/ListResources": READ,
    "/tidings.v1.CatalogService/ListPayloadFormats": READ,
    "/tidings.v1.EventService/PublishEvents": PUBLISH,
    **{
        f"/tidings.v1.DeliveryService/{m}": READ
        for m in ("ListDeliveries", "GetDelivery", "GetHookOverview", "WatchDeliveries")
    },
    "/tidings.v1.DeliveryService/RedeliverDeliveries": WRITE,
    "/tidings.v1.DeliveryService/SendTestEvent": WRITE,
    **{f"/tidings.v1.TemplateService/{m}": READ for m in ("GetTemplate", "ListTemplates")},
    **{
        f"/tidings.v1.TemplateService/{m}": WRITE
        for m in ("CreateTemplate", "UpdateTemplate", "DeleteTemplate", "ApplyTemplate")
    },
    **{f"/tidings.v1.TokenService/{m}": TOKENS for m in ("CreateToken", "GetToken", "ListTokens", "RevokeToken")},
}
CHANGES = {
    *(m for m, roles in ROLES_BY_METHOD.items() if roles == WRITE),
    "/tidings.v1.TokenService/CreateToken",
    "/tidings.v1.TokenService/RevokeToken",
}
"""Control-plane changes (issue #11): each call let through is one audit line, whatever its outcome."""
UNSCOPED = {"/tidings.v1.CatalogService/ListResources", "/tidings.v1.CatalogService/ListPayloadFormats"}
"""The catalog is every company's: no scope to be outside of."""


@dataclass(frozen=True)
class Case:
    """One method: how to call it on company ``c``'s resources, and what a permitted caller gets."""

    method: str
    call: Callable[[Api, World, int, str | None], Code]
    allowed: Code
    tokens: bool = False  # a TokenService method: scope all is in scope, companies/1 is not


def unary(stub: str, method: str, make: Callable[[World, int], Any]) -> Callable[[Api, World, int, str | None], Code]:
    def call(api: Api, world: World, company: int, secret: str | None) -> Code:
        return code_of(getattr(getattr(api, stub), method), make(world, company), secret)

    return call


H, D, T = hooks_pb2, deliveries_pb2, templates_pb2
CASES = [
    Case(
        "/tidings.v1.HookService/CreateHook",
        unary(
            "hooks",
            "CreateHook",
            lambda w, c: H.CreateHookRequest(
                parent=project(c),
                hook_id="h",  # taken: ALREADY_EXISTS once every check passed, and nothing written
                hook=H.Hook(display_name="x", destination_url="http://127.0.0.1:9/x", payload_format="procore.v4"),
            ),
        ),
        Code.ALREADY_EXISTS,
    ),
    Case(
        "/tidings.v1.HookService/GetHook",
        unary("hooks", "GetHook", lambda w, c: H.GetHookRequest(name=hook(c))),
        Code.OK,
    ),
    Case(
        "/tidings.v1.HookService/ListHooks",
        unary("hooks", "ListHooks", lambda w, c: H.ListHooksRequest(parent=project(c))),
        Code.OK,
    ),
    Case(
        "/tidings.v1.HookService/UpdateHook",
        unary(
            "hooks",
            "UpdateHook",
            lambda w, c: H.UpdateHookRequest(
                hook=H.Hook(name=f"{project(c)}/hooks/missing", display_name="y"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.HookService/DeleteHook",
        unary("hooks", "DeleteHook", lambda w, c: H.DeleteHookRequest(name=f"{project(c)}/hooks/missing")),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.HookService/BatchCreateTriggers",
        unary(
            "hooks",
            "BatchCreateTriggers",
            lambda w, c: H.BatchCreateTriggersRequest(
                parent=f"{project(c)}/hooks/missing", triggers=[H.Trigger(resource_name="RFIs", event_type="update")]
            ),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.HookService/BatchDeleteTriggers",
        unary(
            "hooks",
            "BatchDeleteTriggers",
            lambda w, c: H.BatchDeleteTriggersRequest(
                parent=f"{project(c)}/hooks/missing", names=[f"{project(c)}/hooks/missing/triggers/rfis.create"]
            ),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.HookService/ListTriggers",
        unary("hooks", "ListTriggers", lambda w, c: H.ListTriggersRequest(parent=hook(c))),
        Code.OK,
    ),
    Case(
        "/tidings.v1.HookService/RotateSigningSecret",
        unary(
            "hooks",
            "RotateSigningSecret",
            lambda w, c: H.RotateSigningSecretRequest(name=f"{project(c)}/hooks/missing"),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.CatalogService/ListResources",
        unary(
            "catalog",
            "ListResources",
            lambda w, c: catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT),
        ),
        Code.OK,
    ),
    Case(
        "/tidings.v1.CatalogService/ListPayloadFormats",
        unary("catalog", "ListPayloadFormats", lambda w, c: catalog_pb2.ListPayloadFormatsRequest()),
        Code.OK,
    ),
    Case(
        "/tidings.v1.EventService/PublishEvents",
        # A resource the catalog does not list: refused by the core, after the guard, storing nothing.
        unary(
            "events",
            "PublishEvents",
            lambda w, c: events_pb2.PublishEventsRequest(events=[event(c, resource="No Such Resource")]),
        ),
        Code.INVALID_ARGUMENT,
    ),
    Case(
        "/tidings.v1.DeliveryService/ListDeliveries",
        unary("deliveries", "ListDeliveries", lambda w, c: D.ListDeliveriesRequest(parent=project(c))),
        Code.OK,
    ),
    Case(
        "/tidings.v1.DeliveryService/GetDelivery",
        unary("deliveries", "GetDelivery", lambda w, c: D.GetDeliveryRequest(name=w.delivery[c])),
        Code.OK,
    ),
    Case(
        "/tidings.v1.DeliveryService/GetHookOverview",
        unary("deliveries", "GetHookOverview", lambda w, c: D.GetHookOverviewRequest(name=hook(c))),
        Code.OK,
    ),
    Case(
        "/tidings.v1.DeliveryService/WatchDeliveries",
        lambda api, w, c, secret: watch_code(api, project(c), secret),
        Code.CANCELLED,  # let through: the stream opened and was cancelled by the test
    ),
    Case(
        "/tidings.v1.DeliveryService/RedeliverDeliveries",
        # A delivered/failed status filter none of the (queued) deliveries matches: nothing moves.
        unary(
            "deliveries",
            "RedeliverDeliveries",
            lambda w, c: D.RedeliverDeliveriesRequest(parent=project(c), filter='status = "failed"'),
        ),
        Code.OK,
    ),
    Case(
        "/tidings.v1.DeliveryService/SendTestEvent",
        unary("deliveries", "SendTestEvent", lambda w, c: D.SendTestEventRequest(name=f"{project(c)}/hooks/missing")),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.TemplateService/CreateTemplate",
        unary(
            "templates",
            "CreateTemplate",
            lambda w, c: T.CreateTemplateRequest(
                parent=f"companies/{c}", template_id="Not An Id", template=T.Template()
            ),
        ),
        Code.INVALID_ARGUMENT,  # the id is refused once the caller is let through
    ),
    Case(
        "/tidings.v1.TemplateService/GetTemplate",
        unary("templates", "GetTemplate", lambda w, c: T.GetTemplateRequest(name=f"companies/{c}/templates/missing")),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.TemplateService/ListTemplates",
        unary("templates", "ListTemplates", lambda w, c: T.ListTemplatesRequest(parent=f"companies/{c}")),
        Code.OK,
    ),
    Case(
        "/tidings.v1.TemplateService/UpdateTemplate",
        unary(
            "templates",
            "UpdateTemplate",
            lambda w, c: T.UpdateTemplateRequest(
                template=T.Template(name=f"companies/{c}/templates/missing", display_name="y"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.TemplateService/DeleteTemplate",
        unary(
            "templates", "DeleteTemplate", lambda w, c: T.DeleteTemplateRequest(name=f"companies/{c}/templates/missing")
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.TemplateService/ApplyTemplate",
        unary(
            "templates",
            "ApplyTemplate",
            lambda w, c: T.ApplyTemplateRequest(template=f"companies/{c}/templates/missing", project=project(c)),
        ),
        Code.NOT_FOUND,
    ),
    Case(
        "/tidings.v1.TokenService/CreateToken",
        unary(
            "tokens",
            "CreateToken",
            lambda w, c: tokens_pb2.CreateTokenRequest(token=tokens_pb2.Token(role=tokens_pb2.ROLE_VIEWER)),
        ),
        Code.INVALID_ARGUMENT,  # no display_name
        tokens=True,
    ),
    Case(
        "/tidings.v1.TokenService/GetToken",
        unary("tokens", "GetToken", lambda w, c: tokens_pb2.GetTokenRequest(name=f"tokens/{MISSING}")),
        Code.NOT_FOUND,
        tokens=True,
    ),
    Case(
        "/tidings.v1.TokenService/ListTokens",
        unary("tokens", "ListTokens", lambda w, c: tokens_pb2.ListTokensRequest()),
        Code.OK,
        tokens=True,
    ),
    Case(
        "/tidings.v1.TokenService/RevokeToken",
        unary("tokens", "RevokeToken", lambda w, c: tokens_pb2.RevokeTokenRequest(name=f"tokens/{MISSING}")),
        Code.NOT_FOUND,
        tokens=True,
    ),
]
BY_METHOD = {c.method: c for c in CASES}


def expected(case: Case, role: str, in_scope: bool) -> Code:
    if role not in ROLES_BY_METHOD[case.method]:
        return Code.PERMISSION_DENIED
    if not in_scope and case.method not in UNSCOPED:
        return Code.PERMISSION_DENIED
    return case.allowed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    built = build(Path(tmp_path_factory.mktemp("auth")))
    yield built
    built.api.channel.close()
    built.server.stop()


def test_every_method_of_the_policy_has_a_case() -> None:
    guarded = {m for m, rule in POLICY.items() if rule.permission is not None}
    assert guarded == set(BY_METHOD) == set(ROLES_BY_METHOD)


def test_the_matrix_has_every_method_role_and_credential() -> None:
    """At least 150 cases (issue #11): methods × roles × in and out of scope, and methods ×
    the four ways of having no live token."""
    assert len(BY_METHOD) * len(ROLES) * 2 + len(BY_METHOD) * 4 == 28 * 4 * 2 + 28 * 4 == 336


def _run(world: World, case: Case, company: int, secret: str | None) -> Code:
    before = world.snapshot()
    got = case.call(world.api, world, company, secret)
    assert world.snapshot() == before, f"{case.method} changed the store"
    return got


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tidings_server.audit"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("in_scope", [True, False], ids=["in-scope", "out-of-scope"])
@pytest.mark.parametrize("method", list(BY_METHOD), ids=lambda m: m.rsplit("/", 1)[-1])
def test_role_and_scope(world: World, method: str, role: str, in_scope: bool, caplog: pytest.LogCaptureFixture) -> None:
    case = BY_METHOD[method]
    scope = "all" if case.tokens and in_scope else "companies/1"
    secret = world.secrets[(role, scope)]
    company = 1 if case.tokens or in_scope else 2
    want = expected(case, role, in_scope)
    changes = method in CHANGES and want != Code.PERMISSION_DENIED
    with caplog.at_level(logging.INFO, logger="tidings_server.audit"):
        assert _run(world, case, company, secret) == want
        # An error status is sent as the method aborts, before the guard writes its line.
        deadline = time.monotonic() + 5
        while changes and not _audit_lines(caplog) and time.monotonic() < deadline:
            time.sleep(0.005)
    lines = _audit_lines(caplog)
    if changes:
        outcome = "ok" if want == Code.OK else "failed"
        assert [(r.method, r.principal_name, r.outcome) for r in lines] == [  # type: ignore[attr-defined]
            (method.rsplit("/", 1)[-1], f"{role} {scope}", outcome)
        ]
        assert lines[0].principal.startswith("tokens/")  # type: ignore[attr-defined]
    else:
        assert lines == []
    assert secret not in " ".join(str(vars(r)) for r in caplog.records)


@pytest.mark.parametrize("credential", ["none", "revoked", "unknown", "basic"])
@pytest.mark.parametrize("method", list(BY_METHOD), ids=lambda m: m.rsplit("/", 1)[-1])
def test_without_a_live_token(world: World, method: str, credential: str, caplog: pytest.LogCaptureFixture) -> None:
    secret = {
        "none": None,
        "revoked": world.revoked,
        "unknown": "tdg_" + "x" * 43,
        "basic": "Basic b3duZXI6cHc=",  # a credential of another scheme is no credential
    }[credential]
    with caplog.at_level(logging.INFO, logger="tidings_server.audit"):
        assert _run(world, BY_METHOD[method], 1, secret) == Code.UNAUTHENTICATED
    assert _audit_lines(caplog) == []
