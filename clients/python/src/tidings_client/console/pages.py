"""The console's pages: each handler reads what its page shows from the server through the
public AsyncClient, renders one template, and turns the server's refusals into messages on
the page. State-changing forms answer with a redirect (post/redirect/get) carrying a one-time
message, so reloading a page never repeats an action and a secret is never put in a URL."""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from tidings_client import (
    AsyncClient,
    CatalogResource,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    HookChanges,
    HookOverview,
    HookStatus,
    InvalidArgument,
    Options,
    TidingsError,
)
from tidings_client.console import live, views
from tidings_client.console.security import Guard
from tidings_client.console.views import Parent

T = TypeVar("T")

PAGE_SIZE = 25
HISTORY = timedelta(days=28)
TRIGGER_BATCH = 500
REDELIVER_FAILED = 'status = "failed" OR status = "discarded"'
ROTATE_OVERLAPS = {"24h": timedelta(hours=24), "2h": timedelta(hours=2), "0": timedelta(0)}


@dataclass
class Flash:
    """A message for the next page shown, and what only that page may show (a new secret)."""

    kind: str  # "ok" or "error"
    message: str
    secret: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)


class Flashes:
    """One-time messages by random id: popped when shown, the oldest dropped past a bound."""

    LIMIT = 200

    def __init__(self) -> None:
        self._items: OrderedDict[str, Flash] = OrderedDict()

    def put(self, flash: Flash) -> str:
        key = secrets.token_urlsafe(12)
        self._items[key] = flash
        while len(self._items) > self.LIMIT:
            self._items.popitem(last=False)
        return key

    def pop(self, key: str | None) -> Flash | None:
        return self._items.pop(key, None) if key else None


@dataclass(frozen=True)
class Form:
    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return self.fields.get(name, [])


@dataclass(frozen=True)
class EventQuery:
    """The Events list's search, dropdowns, custom filter and page, as the URL carries them."""

    resource_id: str = ""
    resource_name: str = ""
    status: str = ""
    filter: str = ""
    page: int = 1

    @classmethod
    def of(cls, request: Request) -> EventQuery:
        q = request.query_params
        page = q.get("page", "1")
        return cls(
            q.get("resource_id", "").strip(),
            q.get("resource_name", ""),
            q.get("status", ""),
            q.get("filter", "").strip(),
            int(page) if page.isdigit() and int(page) > 0 else 1,
        )

    def delivery_filter(self, now: datetime) -> DeliveryFilter:
        statuses = (DeliveryStatus(self.status),) if self.status in set(DeliveryStatus) else ()
        return DeliveryFilter(
            resource_id=int(self.resource_id) if self.resource_id.isdigit() else 0,
            resource_name=self.resource_name,
            statuses=statuses,
            filter=self.filter,
            start_time=now - HISTORY,
        )

    def url(self, **changes: Any) -> str:
        values = {
            "resource_id": self.resource_id,
            "resource_name": self.resource_name,
            "status": self.status,
            "filter": self.filter,
            "page": str(self.page),
        }
        values.update({k: str(v) for k, v in changes.items()})
        kept = {k: v for k, v in values.items() if v and not (k == "page" and v == "1")}
        return "?" + urlencode(kept) if kept else "?"


async def page_of(items: AsyncIterator[T], page: int, size: int) -> tuple[list[T], bool]:
    """Rows of page ``page`` (from 1) and whether a later page has any."""
    skip = (page - 1) * size
    rows: list[T] = []
    seen = 0
    async for item in items:
        if seen >= skip:
            rows.append(item)
            if len(rows) > size:
                break
        seen += 1
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()
    return rows[:size], len(rows) > size


def _parent(request: Request) -> Parent:
    p = request.path_params
    return Parent(int(p["company"]), int(p["project"]) if "project" in p else None)


def _local(path: str, fallback: str) -> str:
    """A redirect target only within the console (never `//elsewhere`)."""
    return path if path.startswith("/") and not path.startswith("//") else fallback


def _grid(resources: Iterable[CatalogResource]) -> tuple[list[CatalogResource], list[str]]:
    rows = sorted(resources, key=lambda r: r.resource_name.lower())
    types = views.ordered_event_types({t for r in rows for t in r.event_types})
    return rows, types


def _pairs(values: Iterable[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        resource, _, event_type = value.rpartition(":")
        if resource and event_type:
            pairs.append((resource, event_type))
    return pairs


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Pages:
    """Request handlers; ``client`` and ``guard`` are set when the app is assembled and started."""

    client: AsyncClient
    guard: Guard

    def __init__(self, options: Options, view: Jinja2Templates) -> None:
        self.options = options
        self.view = view
        self.flashes = Flashes()

    # -- plumbing ---------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("flash", self.flashes.pop(request.query_params.get("flash")))
        base = {
            "csrf": getattr(request.state, "csrf", ""),
            "target": self.options.target,
            "live_parent": "",
            "parent": None,
        }
        return self.view.TemplateResponse(request, template, {**base, **context}, status_code=status)

    def redirect(self, to: str, flash: Flash | None = None) -> Response:
        if flash is not None:
            to += ("&" if "?" in to else "?") + urlencode({"flash": self.flashes.put(flash)})
        return RedirectResponse(to, status_code=303)

    async def form(self, request: Request) -> Form:
        """The posted form, after its CSRF token is checked."""
        body = (await request.body()).decode("utf-8", errors="replace")
        form = Form(parse_qs(body, keep_blank_values=True))
        self.guard.check_csrf(form.get("csrf") or None)
        return form

    @staticmethod
    def problem(exc: TidingsError) -> Flash:
        return Flash("error", f"{exc.code.name}: {exc.message}")

    async def catalog(self, parent: Parent, payload_format: str) -> list[CatalogResource]:
        return [r async for r in self.client.list_resources(parent.scope, payload_format=payload_format)]

    # -- pages ------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        company = request.query_params.get("company", "").strip()
        project = request.query_params.get("project", "").strip()
        error = ""
        if company or project:
            if company.isdigit() and (not project or project.isdigit()):
                return self.redirect("/" + Parent(int(company), int(project) if project else None).name + "/hooks")
            error = "Company and project are numbers, for example 8 and 6778."
        return self.render(request, "home.html", error=error, company=company, project=project)

    async def parent_home(self, request: Request) -> Response:
        return self.redirect(f"/{_parent(request).name}/hooks")

    async def live(self, request: Request) -> Response:
        return live.stream(self.client, request)

    async def hooks(self, request: Request) -> Response:
        parent = _parent(request)
        hooks = [h async for h in self.client.list_hooks(parent.name)]
        answers = await asyncio.gather(*(self.client.get_hook_overview(h.name) for h in hooks), return_exceptions=True)
        overviews = {h.name: a for h, a in zip(hooks, answers, strict=True) if isinstance(a, HookOverview)}
        return self.render(
            request, "hooks.html", parent=parent, hooks=hooks, overviews=overviews, live_parent=parent.name
        )

    async def new_hook(self, request: Request) -> Response:
        parent = _parent(request)
        formats = [f async for f in self.client.list_payload_formats()]
        values: dict[str, str] = {}
        selected: set[str] = set()
        error = ""
        status = 200
        if request.method == "POST":
            form = await self.form(request)
            values = {k: form.get(k) for k in ("display_name", "hook_id", "destination_url", "payload_format")}
            selected = set(form.getlist("event"))
            try:
                hook = await self.client.create_hook(
                    parent.name,
                    values["destination_url"].strip(),
                    values["payload_format"],
                    display_name=values["display_name"].strip(),
                    authorization_header=form.get("authorization_header"),
                    hook_id=values["hook_id"].strip(),
                )
            except TidingsError as exc:
                error, status = f"{exc.code.name}: {exc.message}", 400
            else:
                flash = Flash("ok", f"Created {hook.display_name or hook.name}.", secret=hook.signing_secret)
                try:
                    for batch in _chunks(sorted(_pairs(selected)), TRIGGER_BATCH):
                        await self.client.create_triggers(hook.name, batch)
                except TidingsError as exc:
                    flash.kind = "error"
                    flash.message += f" Its events were not all selected: {exc.code.name}: {exc.message}"
                return self.redirect("/" + hook.name, flash)
        chosen = (
            values.get("payload_format") or request.query_params.get("format") or (formats[0].name if formats else "")
        )
        rows, types = _grid(await self.catalog(parent, chosen))
        return self.render(
            request,
            "hook_form.html",
            status,
            parent=parent,
            formats=formats,
            chosen=chosen,
            values=values,
            selected=selected,
            current=set(),
            rows=rows,
            types=types,
            error=error,
        )

    async def catalog_grid(self, request: Request) -> Response:
        """The event grid alone, for the create form when another payload format is chosen."""
        parent = _parent(request)
        rows, types = _grid(await self.catalog(parent, request.query_params.get("format", "")))
        return self.render(request, "_grid.html", rows=rows, types=types, selected=set(), current=set())

    async def hook(self, request: Request) -> Response:
        parent = _parent(request)
        hook_id, _, view = request.path_params["hook"].partition(":")
        name = f"{parent.name}/hooks/{hook_id}"
        if view == "events":
            return await self.hook_events(request, parent, name)
        if view == "edit":
            return await self.hook_edit(request, parent, name)
        if view == "delete":
            hook = await self.client.get_hook(name)
            return self.render(request, "confirm_delete.html", parent=parent, hook=hook)
        if view:
            raise HTTPException(404, f"no page {view!r} for a hook")
        if request.method == "POST":
            return await self.hook_action(request, parent, name)
        return await self.hook_page(request, parent, name)

    async def events_list(self, name: str, query: EventQuery) -> tuple[list[Delivery], bool, str]:
        """The Events list's page, or the server's refusal of its filters as an inline message."""
        if query.resource_id and not query.resource_id.isdigit():
            return [], False, "Resource ID: a whole number, for example 54321."
        where = query.delivery_filter(datetime.now(UTC))
        try:
            rows, more = await page_of(
                self.client.list_deliveries(name, where, page_size=min(1000, query.page * PAGE_SIZE + 1)),
                query.page,
                PAGE_SIZE,
            )
        except InvalidArgument as exc:
            return [], False, exc.message
        return rows, more, ""

    async def hook_page(self, request: Request, parent: Parent, name: str) -> Response:
        query = EventQuery.of(request)
        overview, (rows, more, filter_error) = await asyncio.gather(
            self.client.get_hook_overview(name), self.events_list(name, query)
        )
        context: dict[str, Any] = {
            "parent": parent,
            "hook": overview.hook,
            "overview": overview,
            "rows": rows,
            "more": more,
            "query": query,
            "filter_error": filter_error,
            "statuses": list(DeliveryStatus),
            "live_parent": name,
        }
        triggers = [t async for t in self.client.list_triggers(name)]
        resource_names = sorted({t.resource_name for t in triggers} | ({query.resource_name} - {""}))
        return self.render(
            request,
            "hook.html",
            **context,
            triggers=sorted(triggers, key=lambda t: (t.resource_name.lower(), t.event_type)),
            resource_names=resource_names,
            overlaps=list(ROTATE_OVERLAPS),
        )

    async def hook_action(self, request: Request, parent: Parent, name: str) -> Response:
        form = await self.form(request)
        action = self.HOOK_ACTIONS.get(form.get("action"))
        if action is None:
            raise HTTPException(400, f"unknown action {form.get('action')!r}")
        back = _local(form.get("back"), "/" + name)
        try:
            flash = await action(self, name, form)
        except TidingsError as exc:
            return self.redirect(back, self.problem(exc))
        if form.get("action") == "delete":
            back = f"/{parent.name}/hooks"
        return self.redirect(back, flash)

    async def _pause(self, name: str, form: Form) -> Flash:
        hook = await self.client.update_hook(name, HookChanges(status=HookStatus.PAUSED))
        return Flash("ok", f"Paused {hook.display_name or hook.name}.")

    async def _resume(self, name: str, form: Form) -> Flash:
        hook = await self.client.update_hook(name, HookChanges(status=HookStatus.ACTIVE))
        return Flash("ok", f"Resumed {hook.display_name or hook.name}.")

    async def _delete(self, name: str, form: Form) -> Flash:
        await self.client.delete_hook(name)
        return Flash("ok", f"Deleted {name}.")

    async def _test(self, name: str, form: Form) -> Flash:
        result = await self.client.send_test_event(name)
        details = [
            ("Response status", str(result.response_status or "none")),
            ("Latency", views.span(result.latency)),
            ("Error", result.error or "none"),
            ("Response excerpt", views.as_text(result.response_excerpt) or "(empty)"),
        ]
        if result.ok:
            return Flash("ok", "Test event sent: the endpoint answered.", details=details)
        return Flash("error", "Test event sent: the endpoint did not accept it.", details=details)

    async def _rotate(self, name: str, form: Form) -> Flash:
        overlap = ROTATE_OVERLAPS.get(form.get("overlap"), ROTATE_OVERLAPS["24h"])
        hook = await self.client.rotate_signing_secret(name, overlap)
        until = views.utc(hook.previous_secret_expire_time) if overlap else "now"
        return Flash("ok", f"New signing secret. The previous one stops signing {until}.", secret=hook.signing_secret)

    async def _redeliver_failed(self, name: str, form: Form) -> Flash:
        result = await self.client.redeliver_matching(name, REDELIVER_FAILED)
        more = " More remain: press again." if result.more else ""
        return Flash("ok", f"Queued {result.queued_count} event(s) again.{more}")

    async def _remove_events(self, name: str, form: Form) -> Flash:
        names = form.getlist("trigger")
        if not names:
            return Flash("error", "Select the events to remove first.")
        for batch in _chunks(names, TRIGGER_BATCH):
            await self.client.delete_triggers(name, batch, allow_missing=True)
        return Flash("ok", f"Removed {len(names)} event(s).")

    HOOK_ACTIONS: ClassVar[dict[str, Callable[[Pages, str, Form], Awaitable[Flash]]]] = {
        "pause": _pause,
        "resume": _resume,
        "delete": _delete,
        "test": _test,
        "rotate": _rotate,
        "redeliver-failed": _redeliver_failed,
        "remove-events": _remove_events,
    }

    async def hook_edit(self, request: Request, parent: Parent, name: str) -> Response:
        """The endpoint's URL, Authorization header and name; the payload format is shown, fixed."""
        hook = await self.client.get_hook(name)
        values = {"destination_url": hook.destination_url, "display_name": hook.display_name}
        error = ""
        if request.method == "POST":
            form = await self.form(request)
            values = {k: form.get(k).strip() for k in values}
            header = form.get("authorization_header")
            changes = HookChanges(
                destination_url=values["destination_url"],
                display_name=values["display_name"],
                authorization_header="" if form.get("remove_authorization") else (header or None),
            )
            try:
                hook = await self.client.update_hook(name, changes)
            except TidingsError as exc:
                error = f"{exc.code.name}: {exc.message}"
            else:
                return self.redirect("/" + name, Flash("ok", f"Saved {hook.display_name or hook.name}."))
        status = 400 if error else 200
        return self.render(request, "hook_edit.html", status, parent=parent, hook=hook, values=values, error=error)

    async def hook_events(self, request: Request, parent: Parent, name: str) -> Response:
        """Selected events as the catalog grid: tick more to add them, untick to remove."""
        hook = await self.client.get_hook(name)
        current = {f"{t.resource_name}:{t.event_type}": t.name async for t in self.client.list_triggers(name)}
        if request.method == "POST":
            form = await self.form(request)
            wanted = set(form.getlist("event"))
            add = sorted(_pairs(wanted - set(current)))
            remove = sorted(current[k] for k in set(current) - wanted)
            try:
                for batch in _chunks(add, TRIGGER_BATCH):
                    await self.client.create_triggers(name, batch)
                for names in _chunks(remove, TRIGGER_BATCH):
                    await self.client.delete_triggers(name, names, allow_missing=True)
            except TidingsError as exc:
                return self.redirect(f"/{name}:events", self.problem(exc))
            message = f"Events saved: {len(add)} added, {len(remove)} removed."
            return self.redirect("/" + name, Flash("ok", message))
        rows, types = _grid(await self.catalog(parent, hook.payload_format))
        return self.render(
            request,
            "hook_events.html",
            parent=parent,
            hook=hook,
            rows=rows,
            types=types,
            selected=set(current),
            current=set(current),
        )

    async def delivery(self, request: Request) -> Response:
        parent = _parent(request)
        p = request.path_params
        hook_name = f"{parent.name}/hooks/{p['hook']}"
        name = f"{hook_name}/deliveries/{p['delivery']}"
        if request.method == "POST":
            form = await self.form(request)
            if form.get("action") != "redeliver":
                raise HTTPException(400, f"unknown action {form.get('action')!r}")
            try:
                result = await self.client.redeliver(name)
            except TidingsError as exc:
                return self.redirect("/" + name, self.problem(exc))
            return self.redirect("/" + name, Flash("ok", f"Queued again ({result.queued_count})."))
        delivery = await self.client.get_delivery(name)
        return self.render(
            request, "delivery.html", parent=parent, hook_name=hook_name, delivery=delivery, live_parent=hook_name
        )
