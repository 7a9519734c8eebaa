"""Who may do what: the one policy table, every RPC method to the permission it needs and where
in its request the resources it touches are named.

The gRPC adapter (grpc_api/access.py) applies this table to every call before the method runs;
no method checks access itself. A method missing from the table is refused (fail closed), and
a test holds the table to every method of every service in the proto.

The table speaks of requests only through field paths (``"parent"``, ``"hook.name"``) and
reads resources from resource names, so it stays free of protobuf. A resource's reach is the
``companies/{c}`` or ``companies/{c}/projects/{p}`` its name starts with; a name that starts with
neither (a token, something malformed) reaches everything, so only an unscoped principal may
name it. Outside a principal's scope is PERMISSION_DENIED whether the resource exists or not:
the check runs on the name, before anything is read, so it cannot tell which.

Lists, filters, watches and redelivery by filter select under a parent, so checking the parent
is checking everything they can return or touch. A company parent reaches the company's project
hooks and deliveries too; a project-scoped principal naming its company as the parent is
therefore refused, not narrowed: a list that silently returned less than it says would mislead.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tidings_server.domain.names import MAX_ID
from tidings_server.domain.tokens import EVERYTHING, Reach, Role, Token


class Permission(enum.Enum):
    READ_HOOKS = "read hooks"
    WRITE_HOOKS = "change hooks"
    READ_CATALOG = "read the catalog"
    READ_HISTORY = "read delivery history"
    REDELIVER = "redeliver"
    TEST_SEND = "send test events"
    PUBLISH = "publish events"
    MANAGE_TOKENS = "manage tokens"


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(
        {
            Permission.READ_HOOKS,
            Permission.WRITE_HOOKS,
            Permission.READ_CATALOG,
            Permission.READ_HISTORY,
            Permission.REDELIVER,
            Permission.TEST_SEND,
        }
    ),
    Role.VIEWER: frozenset({Permission.READ_HOOKS, Permission.READ_CATALOG, Permission.READ_HISTORY}),
    Role.PUBLISHER: frozenset({Permission.PUBLISH}),
}


@dataclass(frozen=True, slots=True)
class Named:
    """The request field at ``path`` holds a resource name (or a parent); empty names nothing."""

    path: str


@dataclass(frozen=True, slots=True)
class Each:
    """Every item of the repeated field ``path`` belongs to the company and project in its fields
    ``company`` and ``project`` (0: no project)."""

    path: str
    company: str
    project: str


@dataclass(frozen=True, slots=True)
class ChangesWhen:
    """The call changes the control plane when an item of the repeated field ``path`` sets its
    field ``field`` (a Projects create event naming a project template makes hooks)."""

    path: str
    field: str


@dataclass(frozen=True, slots=True)
class Rule:
    """What a method needs: ``permission`` (None: open to anyone, even without a credential),
    the resources it names (none: the permission alone decides; no name given in any of them:
    only an unscoped principal may call it), and whether it changes the control plane (logged)."""

    permission: Permission | None
    targets: tuple[Named | Each, ...] = ()
    changes: bool = False
    global_only: bool = False  # the resource has no company (tokens): only an unscoped principal
    changes_when: ChangesWhen | None = None  # not a change by itself, but with this set (logged then)


def _hooks(method: str) -> str:
    return f"/tidings.v1.HookService/{method}"


def _deliveries(method: str) -> str:
    return f"/tidings.v1.DeliveryService/{method}"


def _tokens(method: str) -> str:
    return f"/tidings.v1.TokenService/{method}"


def _templates(method: str) -> str:
    return f"/tidings.v1.TemplateService/{method}"


P = Permission
POLICY: Final[dict[str, Rule]] = {
    _hooks("CreateHook"): Rule(P.WRITE_HOOKS, (Named("parent"),), changes=True),
    _hooks("GetHook"): Rule(P.READ_HOOKS, (Named("name"),)),
    _hooks("ListHooks"): Rule(P.READ_HOOKS, (Named("parent"),)),
    _hooks("UpdateHook"): Rule(P.WRITE_HOOKS, (Named("hook.name"),), changes=True),
    _hooks("DeleteHook"): Rule(P.WRITE_HOOKS, (Named("name"),), changes=True),
    _hooks("BatchCreateTriggers"): Rule(P.WRITE_HOOKS, (Named("parent"),), changes=True),
    _hooks("BatchDeleteTriggers"): Rule(P.WRITE_HOOKS, (Named("parent"),), changes=True),
    _hooks("ListTriggers"): Rule(P.READ_HOOKS, (Named("parent"),)),
    _hooks("RotateSigningSecret"): Rule(P.WRITE_HOOKS, (Named("name"),), changes=True),
    # The catalog is the same for every company: the permission alone decides.
    "/tidings.v1.CatalogService/ListResources": Rule(P.READ_CATALOG),
    "/tidings.v1.CatalogService/ListPayloadFormats": Rule(P.READ_CATALOG),
    # Publishing is the data plane, but an event that applies a project template makes hooks.
    "/tidings.v1.EventService/PublishEvents": Rule(
        P.PUBLISH,
        (Each("events", "company_id", "project_id"),),
        changes_when=ChangesWhen("events", "project_template"),
    ),
    _deliveries("ListDeliveries"): Rule(P.READ_HISTORY, (Named("parent"),)),
    _deliveries("GetDelivery"): Rule(P.READ_HISTORY, (Named("name"),)),
    _deliveries("GetHookOverview"): Rule(P.READ_HISTORY, (Named("name"),)),
    _deliveries("WatchDeliveries"): Rule(P.READ_HISTORY, (Named("parent"),)),
    _deliveries("RedeliverDeliveries"): Rule(P.REDELIVER, (Named("name"), Named("parent")), changes=True),
    _deliveries("SendTestEvent"): Rule(P.TEST_SEND, (Named("name"),), changes=True),
    # Templates are a company's: hooks made from them are hooks, so changing or applying one
    # is changing hooks; applying needs both the template's company and the project in scope.
    _templates("CreateTemplate"): Rule(P.WRITE_HOOKS, (Named("parent"),), changes=True),
    _templates("GetTemplate"): Rule(P.READ_HOOKS, (Named("name"),)),
    _templates("ListTemplates"): Rule(P.READ_HOOKS, (Named("parent"),)),
    _templates("UpdateTemplate"): Rule(P.WRITE_HOOKS, (Named("template.name"),), changes=True),
    _templates("DeleteTemplate"): Rule(P.WRITE_HOOKS, (Named("name"),), changes=True),
    _templates("ApplyTemplate"): Rule(P.WRITE_HOOKS, (Named("template"), Named("project")), changes=True),
    _tokens("CreateToken"): Rule(P.MANAGE_TOKENS, changes=True, global_only=True),
    _tokens("GetToken"): Rule(P.MANAGE_TOKENS, global_only=True),
    _tokens("ListTokens"): Rule(P.MANAGE_TOKENS, global_only=True),
    _tokens("RevokeToken"): Rule(P.MANAGE_TOKENS, changes=True, global_only=True),
    # Open: orchestrators probe health without credentials, and reflection only describes the API.
    "/grpc.health.v1.Health/Check": Rule(None),
    "/grpc.health.v1.Health/Watch": Rule(None),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(None),
}

_NAME_RE = re.compile(r"companies/([1-9][0-9]{0,18})(?:/projects/([1-9][0-9]{0,18}|-))?(?:/.*)?", re.DOTALL)


def reach_of(name: str) -> Reach:
    """How far a resource name reaches: its company and project; a project wildcard (``-``)
    reaches the whole company; a name of no company reaches everything."""
    m = _NAME_RE.fullmatch(name)
    if m is None or int(m[1]) > MAX_ID:
        return EVERYTHING
    company, project = int(m[1]), m[2]
    if project is None or project == "-":
        return Reach(company)
    if int(project) > MAX_ID:
        return EVERYTHING
    return Reach(company, int(project))


def reach_of_ids(company_id: int, project_id: int) -> Reach:
    """An event's reach from its ids (a project id of 0: a company-level event)."""
    if company_id <= 0:
        return EVERYTHING
    return Reach(company_id, project_id if project_id > 0 else None)


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a call is refused; ``message`` is what the caller reads."""

    message: str


def authorize(principal: Token, method: str, rule: Rule, targets: Iterable[tuple[str, Reach]]) -> Denied | None:
    """Whether ``principal`` may call ``method`` on ``targets`` (each as (where, reach)): None, or why not."""
    permission = rule.permission
    if permission is None:
        return None
    who = f"token {principal.token_id} ({principal.role.value}, scope {principal.scope})"
    short = method.rsplit("/", 1)[-1]
    if permission not in ROLE_PERMISSIONS[principal.role]:
        return Denied(f"{short}: {who} may not {permission.value}")
    if rule.global_only and principal.scope != EVERYTHING:
        return Denied(f"{short}: {who}: only a token of scope all may {permission.value}")
    found = list(targets)
    if rule.targets and not found:
        found = [("request", EVERYTHING)]
    for where, reach in found:
        if not principal.scope.covers(reach):
            return Denied(f"{short}: {where}: {reach} is outside the scope of {who}")
    return None
