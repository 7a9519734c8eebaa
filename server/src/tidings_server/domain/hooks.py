"""Hook and trigger management: the rules of CreateHook … ListTriggers, independent of the wire."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import trio
from ulid import ULID

from tidings_server.domain import filtering, names, paging
from tidings_server.domain.catalog import hook_scopes
from tidings_server.domain.destinations import DestinationPolicy, Resolver, check_destination
from tidings_server.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from tidings_server.domain.model import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_RETRYABLE_STATUSES,
    Hook,
    HookDefinition,
    HookStatus,
    Ordering,
    ResourceType,
    RetryPolicy,
    Scope,
    SendRate,
    Trigger,
)
from tidings_server.domain.paging import Page
from tidings_server.domain.ports import Store
from tidings_server.domain.quoting import quote
from tidings_server.domain.secrets import check_authorization_header
from tidings_server.domain.signing import new_secret

MAX_DISPLAY_NAME = 200
MAX_TRIGGERS_PER_BATCH = 500
MUTABLE_FIELDS = (
    "display_name",
    "destination_url",
    "authorization_header",
    "status",
    "retry_policy",
    "ordering",
    "max_concurrency",
    "signing_disabled",
    "rate_limit",
    "projects",
)
MAX_CONCURRENCY = 64
MAX_PROJECTS = 1000
MAX_SEND_RATE = 10_000.0  # deliveries per second: beyond it a limit limits nothing here
MAX_BURST = 10_000
DEFAULT_SIGNING_OVERLAP = timedelta(hours=24)
MAX_SIGNING_OVERLAP = timedelta(days=7)
_LIMITS = {
    "timeout": (timedelta(seconds=1), timedelta(seconds=60)),
    "retry_window": (timedelta(minutes=1), timedelta(hours=72)),
    "initial_backoff": (timedelta(milliseconds=100), timedelta(hours=1)),
    "max_backoff": (timedelta(milliseconds=100), timedelta(hours=24)),
}
OUTPUT_ONLY_FIELDS = (
    "name",
    "create_time",
    "update_time",
    "signing_secret",
    "previous_secret_expire_time",
    "disabled_reason",
    "disable_time",
)
HOOK_FILTER_SCHEMA: filtering.Schema = {
    "status": filtering.Enum(tuple(s.name for s in HookStatus)),
    "payload_format": filtering.STRING,
}


@dataclass(frozen=True, slots=True)
class RetryPolicyInput:
    """A retry policy as given; None (or empty) fields take the defaults."""

    timeout: timedelta | None = None
    retry_window: timedelta | None = None
    initial_backoff: timedelta | None = None
    max_backoff: timedelta | None = None
    retryable_statuses: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class HookInput:
    """The caller-settable fields of a hook, as the adapter decoded them (None or 0 = not given)."""

    display_name: str = ""
    destination_url: str = ""
    authorization_header: str = ""
    payload_format: str = ""
    status: HookStatus | None = None
    retry_policy: RetryPolicyInput = field(default_factory=RetryPolicyInput)
    ordering: Ordering | None = None
    max_concurrency: int = 0
    signing_disabled: bool = False
    rate_limit: SendRate | None = None  # None: no limit
    projects: tuple[int, ...] = ()


class Lookup:
    """What hook rules need to know about the loaded plugins."""

    def __init__(self, payload_formats: Sequence[str], resource: Callable[[Scope, str], ResourceType | None]):
        self.payload_formats = frozenset(payload_formats)
        self.resource = resource


class HookService:
    """Validates and applies every hook and trigger operation; the store keeps them atomic."""

    def __init__(
        self,
        store: Store,
        lookup: Lookup,
        policy: DestinationPolicy,
        resolve: Resolver,
        now: Callable[[], datetime],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._lookup = lookup
        self._policy = policy
        self._resolve = resolve
        self._now = now
        self._on_change = on_change

    # -- hooks ---------------------------------------------------------------------------

    async def create_hook(self, parent: str, given: HookInput, hook_id: str = "") -> Hook:
        where = names.parse_parent("parent", parent)
        hook_id = names.check_hook_id("hook_id", hook_id) if hook_id else str(ULID()).lower()
        display_name = _display_name("hook.display_name", given.display_name)
        auth = check_authorization_header("hook.authorization_header", given.authorization_header)
        self.check_format("hook.payload_format", given.payload_format)
        policy = retry_policy("hook.retry_policy", given.retry_policy)
        concurrency = _max_concurrency("hook.max_concurrency", given.max_concurrency)
        rate = send_rate("hook.rate_limit", given.rate_limit)
        projects = check_projects("hook.projects", where.project_id, given.projects)
        # Last, since it may look the host up: every cheap check has passed by now.
        url = await check_destination("hook.destination_url", given.destination_url, self._policy, self._resolve)
        now = self._now()
        hook = Hook(
            name=names.hook_name(where, hook_id),
            company_id=where.company_id,
            project_id=where.project_id,
            display_name=display_name,
            destination_url=url,
            authorization_header=auth,
            payload_format=given.payload_format,
            status=given.status or HookStatus.ACTIVE,
            create_time=now,
            update_time=now,
            retry_policy=policy,
            ordering=given.ordering or Ordering.UNORDERED,
            max_concurrency=concurrency,
            rate_limit=rate,
            signing_disabled=given.signing_disabled,
            projects=projects,
            # Even when signing starts disabled: turning it on later then needs no new secret.
            signing_secret=new_secret(),
        )
        await self._store.create_hook(hook)
        return hook

    async def get_hook(self, name: str) -> Hook:
        names.parse_hook_name("name", name)
        return without_expired_secret(await self._store.get_hook(name), self._now())

    async def list_hooks(self, parent: str, size: int, token: str, filter_text: str) -> Page[Hook]:
        where = names.parse_parent("parent", parent, allow_any_project=True)
        limit = paging.page_size(size)
        expr = filtering.parse(filter_text, HOOK_FILTER_SCHEMA)
        after = paging.decode_token(token, str(where), filter_text)
        found: list[Hook] = []
        # Hooks per parent are few, so filtering in the core keeps every store simple.
        while len(found) <= limit:
            batch = await self._store.list_hooks(where, after=after, limit=limit + 1)
            found += [h for h in batch if expr is None or filtering.evaluate(expr, _hook_record(h))]
            if len(batch) <= limit:
                break
            after = batch[-1].name
        now = self._now()
        found = [without_expired_secret(h, now) for h in found]
        return paging.cut(found, limit, _name, str(where), filter_text)

    async def update_hook(self, name: str, given: HookInput, mask: Sequence[str]) -> Hook:
        where, _ = names.parse_hook_name("hook.name", name)
        paths = _check_mask(mask)
        values: dict[str, object] = {}
        if "display_name" in paths:
            values["display_name"] = _display_name("hook.display_name", given.display_name)
        if "destination_url" in paths:
            values["destination_url"] = await check_destination(
                "hook.destination_url", given.destination_url, self._policy, self._resolve
            )
        if "authorization_header" in paths:
            values["authorization_header"] = check_authorization_header(
                "hook.authorization_header", given.authorization_header
            )
        if "status" in paths:
            if given.status is None:
                raise InvalidArgument("hook.status: must be ACTIVE, PAUSED or DISABLED when update_mask names it")
            values["status"] = given.status
        if "retry_policy" in paths:
            values["retry_policy"] = retry_policy("hook.retry_policy", given.retry_policy)
        if "ordering" in paths:
            values["ordering"] = given.ordering or Ordering.UNORDERED
        if "max_concurrency" in paths:
            values["max_concurrency"] = _max_concurrency("hook.max_concurrency", given.max_concurrency)
        if "signing_disabled" in paths:
            values["signing_disabled"] = given.signing_disabled
        if "rate_limit" in paths:
            values["rate_limit"] = send_rate("hook.rate_limit", given.rate_limit)
        if "status" in paths:  # an admin's decision replaces whatever tidings said before
            values["disabled_reason"], values["disable_time"] = "", None
        if "projects" in paths:
            values["projects"] = check_projects("hook.projects", where.project_id, given.projects)
        now = self._now()

        def change(hook: Hook) -> Hook:
            if values.get("signing_disabled") is False and not hook.signing_secret:
                raise FailedPrecondition(
                    f"hook.signing_disabled: hook {name} has no signing secret yet;"
                    " call RotateSigningSecret first, then enable signing"
                )
            # An expired previous secret is dropped on the way: it must not outlive its use.
            return replace(without_expired_secret(hook, now), update_time=now, **values)  # type: ignore[arg-type]

        # Shielded: a caller's deadline must not leave a disabled hook with pending deliveries.
        with trio.CancelScope(shield=True):
            hook = await self._store.update_hook(name, change)
            if hook.status is HookStatus.DISABLED:
                await self._store.discard_pending(name, now, "the hook was disabled")
            elif "rate_limit" in paths:  # what waits for the old limit's token goes by the new one
                await self._store.hasten(name, now)
        self._on_change()
        return without_expired_secret(hook, now)

    async def rotate_signing_secret(self, name: str, overlap: timedelta | None) -> Hook:
        """Give the hook a new secret; the current one keeps signing too for ``overlap``.

        The returned hook carries the new secret (the adapter shows it this once). A rotation
        during another's overlap drops the oldest secret: at most two ever sign a delivery.
        """
        names.parse_hook_name("name", name)
        if overlap is None:
            overlap = DEFAULT_SIGNING_OVERLAP
        elif not timedelta(0) <= overlap <= MAX_SIGNING_OVERLAP:
            raise InvalidArgument(f"overlap: {_span(overlap)} is outside 0 to {_span(MAX_SIGNING_OVERLAP)}")
        secret = new_secret()
        now = self._now()

        def change(hook: Hook) -> Hook:
            keep = bool(overlap) and bool(hook.signing_secret)
            return replace(
                hook,
                update_time=now,
                signing_secret=secret,
                previous_signing_secret=hook.signing_secret if keep else "",
                previous_secret_expire_time=now + overlap if keep else None,
            )

        return await self._store.update_hook(name, change)

    async def delete_hook(self, name: str) -> None:
        names.parse_hook_name("name", name)
        # Shielded: a caller's deadline must not leave a deleted hook's deliveries pending.
        with trio.CancelScope(shield=True):
            await self._store.delete_hook(name)
            await self._store.discard_pending(name, self._now(), "the hook was deleted")
        self._on_change()

    # -- triggers ------------------------------------------------------------------------

    async def create_triggers(self, parent: str, pairs: Sequence[tuple[str, str]]) -> list[Trigger]:
        names.parse_hook_name("parent", parent)
        _check_batch_size("triggers", len(pairs))
        hook = await self._store.get_hook(parent)
        now = self._now()
        triggers = [
            Trigger(names.trigger_name(parent, *self.check_pair(hook.scope, hook.payload_format, i, pair)), *pair, now)
            for i, pair in enumerate(pairs)
        ]
        return await self._store.add_triggers(parent, triggers)

    async def delete_triggers(self, parent: str, trigger_names: Sequence[str], allow_missing: bool) -> None:
        names.parse_hook_name("parent", parent)
        _check_batch_size("names", len(trigger_names))
        for i, name in enumerate(trigger_names):
            names.check_trigger_name(f"names[{i}]", name, parent)
        await self._store.delete_triggers(parent, trigger_names, allow_missing=allow_missing)

    async def list_triggers(self, parent: str, size: int, token: str) -> Page[Trigger]:
        names.parse_hook_name("parent", parent)
        limit = paging.page_size(size)
        after = paging.decode_token(token, parent)
        batch = await self._store.list_triggers(parent, after=after, limit=limit + 1)
        return paging.cut(batch, limit, _name, parent)

    # -- rules ---------------------------------------------------------------------------

    async def check_definition(
        self, field: str, hook_id: str, given: HookInput, pairs: Sequence[tuple[str, str]]
    ) -> HookDefinition:
        """A template's project hook, checked by the rules of CreateHook and BatchCreateTriggers
        (``field`` prefixes every message, e.g. ``template.hooks[0]``)."""
        names.check_hook_id(f"{field}.hook_id", hook_id)
        display_name = _display_name(f"{field}.display_name", given.display_name)
        auth = check_authorization_header(f"{field}.authorization_header", given.authorization_header)
        self.check_format(f"{field}.payload_format", given.payload_format)
        policy = retry_policy(f"{field}.retry_policy", given.retry_policy)
        concurrency = _max_concurrency(f"{field}.max_concurrency", given.max_concurrency)
        if given.projects:
            raise InvalidArgument(f"{field}.projects: a template makes project hooks, which take no project list")
        if len(pairs) > MAX_TRIGGERS_PER_BATCH:
            raise InvalidArgument(f"{field}.triggers: {len(pairs)} is more than the {MAX_TRIGGERS_PER_BATCH} allowed")
        checked = tuple(
            dict.fromkeys(
                self.check_pair(Scope.PROJECT, given.payload_format, i, pair, f"{field}.triggers")
                for i, pair in enumerate(pairs)
            )
        )
        url = await check_destination(f"{field}.destination_url", given.destination_url, self._policy, self._resolve)
        return HookDefinition(
            hook_id=hook_id,
            display_name=display_name,
            destination_url=url,
            authorization_header=auth,
            payload_format=given.payload_format,
            triggers=checked,
            retry_policy=policy,
            ordering=given.ordering or Ordering.UNORDERED,
            max_concurrency=concurrency,
            signing_disabled=given.signing_disabled,
        )

    def check_format(self, field: str, name: str) -> None:
        if not name:
            raise InvalidArgument(f"{field}: required; see CatalogService.ListPayloadFormats")
        if name not in self._lookup.payload_formats:
            known = ", ".join(sorted(self._lookup.payload_formats)) or "none loaded"
            raise InvalidArgument(f"{field}: unknown payload format {quote(name)}; known: {known}")

    def check_pair(
        self, scope: Scope, payload_format: str, index: int, pair: tuple[str, str], field: str = "triggers"
    ) -> tuple[str, str]:
        """``pair`` if a hook of ``scope`` using ``payload_format`` may select it."""
        resource_name, event_type = pair
        where = f"{field}[{index}] ({quote(resource_name)}, {quote(event_type)})"
        if not resource_name:
            raise InvalidArgument(f"{field}[{index}].resource_name: required")
        if not event_type:
            raise InvalidArgument(f"{field}[{index}].event_type: required")
        # A company hook may select project-level resources too: it then receives them from
        # every project of its company (or those its ``projects`` lists).
        resource = self._lookup.resource(scope, resource_name)
        if resource is None and scope is Scope.COMPANY:
            resource = self._lookup.resource(Scope.PROJECT, resource_name)
        if resource is None or scope not in hook_scopes(resource):
            if scope is Scope.PROJECT and self._lookup.resource(Scope.COMPANY, resource_name) is not None:
                raise InvalidArgument(
                    f"{where}: {quote(resource_name)} is a company-level resource; project hooks cannot select it"
                )
            raise InvalidArgument(
                f"{where}: unknown resource {quote(resource_name)} for {scope.value} hooks;"
                " see CatalogService.ListResources"
            )
        if event_type not in resource.event_types:
            supported = ", ".join(sorted(resource.event_types))
            raise InvalidArgument(
                f"{where}: {quote(resource_name)} does not support event type {quote(event_type)};"
                f" supported: {supported}"
            )
        if resource.payload_formats is not None and payload_format not in resource.payload_formats:
            raise InvalidArgument(
                f"{where}: {quote(resource_name)} is not available in payload format {quote(payload_format)}"
            )
        return pair


async def disable_hook(store: Store, name: str, now: datetime, reason: str) -> bool:
    """Disable a hook because delivering to it is pointless (410 Gone, failing for too long) and
    discard what is pending and forget since when it fails; the hook keeps ``reason`` and ``now``
    so its readers learn why and since when. False when it was gone or disabled already (nothing to tell anyone)."""
    changed = False

    def change(hook: Hook) -> Hook:
        nonlocal changed
        if hook.status is HookStatus.DISABLED:
            return hook
        changed = True
        return replace(hook, status=HookStatus.DISABLED, update_time=now, disabled_reason=reason, disable_time=now)

    with trio.CancelScope(shield=True):
        try:
            await store.update_hook(name, change)
        except NotFound:
            return False
        await store.discard_pending(name, now, reason)
        await store.clear_failing(name)  # enabled again, it is given a whole period afresh
    return changed


def send_rate(field_name: str, given: SendRate | None) -> SendRate | None:
    """A checked rate limit; None (or a rate of 0) means no limit."""
    if given is None or given.per_second == 0:
        return None
    if not 0 < given.per_second <= MAX_SEND_RATE:
        raise InvalidArgument(
            f"{field_name}.per_second: {given.per_second:g} is outside 0 (no limit) to {MAX_SEND_RATE:g}"
        )
    if not 1 <= given.burst <= MAX_BURST:
        raise InvalidArgument(f"{field_name}.burst: {given.burst} is outside 1 to {MAX_BURST}")
    return given


def check_projects(field_name: str, project_id: int | None, given: Sequence[int]) -> tuple[int, ...]:
    """A company hook's project list, ascending; a project hook takes none."""
    if not given:
        return ()
    if project_id is not None:
        raise InvalidArgument(
            f"{field_name}: only a company hook takes a project list; this hook belongs to project {project_id}"
        )
    if len(given) > MAX_PROJECTS:
        raise InvalidArgument(f"{field_name}: {len(given)} projects is more than the {MAX_PROJECTS} allowed")
    seen: set[int] = set()
    for index, project in enumerate(given):
        if not 1 <= project <= names.MAX_ID:
            raise InvalidArgument(f"{field_name}[{index}]: {project} is not a project id (1 to {names.MAX_ID})")
        if project in seen:
            raise InvalidArgument(f"{field_name}[{index}]: project {project} is listed twice")
        seen.add(project)
    return tuple(sorted(seen))


def retry_policy(field_name: str, given: RetryPolicyInput) -> RetryPolicy:
    """A complete, checked policy from a partial one."""
    default = RetryPolicy()
    values: dict[str, timedelta] = {}
    for name, (low, high) in _LIMITS.items():
        value: timedelta | None = getattr(given, name)
        if value is None:
            values[name] = getattr(default, name)
        elif not low <= value <= high:
            raise InvalidArgument(
                f"{field_name}.{name}: {_seconds(value)} is outside {_seconds(low)} to {_seconds(high)}"
            )
        else:
            values[name] = value
    if values["max_backoff"] < values["initial_backoff"]:
        raise InvalidArgument(
            f"{field_name}.max_backoff: {_seconds(values['max_backoff'])} is less than initial_backoff"
            f" {_seconds(values['initial_backoff'])}"
        )
    statuses = frozenset(given.retryable_statuses) or DEFAULT_RETRYABLE_STATUSES
    for status in given.retryable_statuses:
        if not 400 <= status <= 599:
            raise InvalidArgument(f"{field_name}.retryable_statuses: {status} is not an HTTP error status (400-599)")
    if 410 in statuses and given.retryable_statuses:
        raise InvalidArgument(f"{field_name}.retryable_statuses: 410 Gone always disables the hook; remove it")
    return RetryPolicy(retryable_statuses=statuses, **values)


def without_expired_secret(hook: Hook, now: datetime) -> Hook:
    """Once a rotation's overlap is over, the previous secret signs nothing: it is not shown,
    and the next write of the hook (an update or a rotation) drops the stored copy."""
    expire = hook.previous_secret_expire_time
    if expire is None or now < expire:
        return hook
    return replace(hook, previous_signing_secret="", previous_secret_expire_time=None)


def _span(value: timedelta) -> str:
    """``30 days``, ``7 days``, ``1 day 12 hours``, ``90 s``: what a person reads a bound in."""
    seconds = value.total_seconds()
    days, rest = divmod(seconds, 86400)
    hours = rest / 3600
    if days and not rest:
        return f"{days:g} day{'s' if days != 1 else ''}"
    if days and not rest % 3600:
        return f"{days:g} day{'s' if days != 1 else ''} {hours:g} hour{'s' if hours != 1 else ''}"
    if seconds >= 3600 and not seconds % 3600:
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{seconds:g} s"


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g} s"


def _max_concurrency(field_name: str, value: int) -> int:
    if value == 0:
        return DEFAULT_MAX_CONCURRENCY
    if not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidArgument(f"{field_name}: {value} is outside 1 to {MAX_CONCURRENCY}")
    return value


def _display_name(field: str, value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidArgument(f"{field}: {len(value)} characters is longer than the {MAX_DISPLAY_NAME} allowed")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise InvalidArgument(f"{field}: must not contain control characters or line breaks")
    return value


def _check_mask(mask: Sequence[str]) -> set[str]:
    if not mask:
        raise InvalidArgument(f"update_mask: required; name the fields to change ({', '.join(MUTABLE_FIELDS)})")
    paths = set(mask)
    if "payload_format" in paths:
        raise FailedPrecondition(
            "hook.payload_format cannot be changed after creation; delete the hook and create it again"
            " with the new payload format"
        )
    for path in mask:
        if path in OUTPUT_ONLY_FIELDS:
            raise InvalidArgument(f"update_mask: {quote(path)} is output only and cannot be updated")
        if path not in MUTABLE_FIELDS:
            raise InvalidArgument(f"update_mask: unknown field {quote(path)}; updatable: {', '.join(MUTABLE_FIELDS)}")
    return paths


def _check_batch_size(field: str, n: int) -> None:
    if n == 0:
        raise InvalidArgument(f"{field}: at least one is required")
    if n > MAX_TRIGGERS_PER_BATCH:
        raise InvalidArgument(f"{field}: {n} is more than the {MAX_TRIGGERS_PER_BATCH} allowed per call")


def _name(item: Hook | Trigger) -> str:
    return item.name


def _hook_record(hook: Hook) -> Mapping[str, object]:
    return {"status": hook.status.name, "payload_format": hook.payload_format}
