"""Project templates: a company's hook definitions, and applying them to a project.

Applying is a copy made once (as in Procore): each definition becomes a project hook with a
signing secret of its own, recording the template and the revision it came from, and later
edits of the template never touch it. Applying again makes nothing twice: a hook of the
definition's name that came from this template counts as made; one of that name made any
other way stops the whole apply (nothing is written) so that no hook is silently taken over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from tidings_server.domain import names, paging
from tidings_server.domain.errors import AlreadyExists, InvalidArgument, NotFound, TidingsError
from tidings_server.domain.hooks import MAX_DISPLAY_NAME, HookInput, HookService
from tidings_server.domain.model import Hook, HookDefinition, HookStatus, Template, Trigger
from tidings_server.domain.paging import Page
from tidings_server.domain.ports import Store
from tidings_server.domain.quoting import quote
from tidings_server.domain.signing import new_secret

log = logging.getLogger(__name__)

MAX_DEFINITIONS = 50
TEMPLATE_FIELDS = ("display_name", "hooks")


@dataclass(frozen=True, slots=True)
class DefinitionInput:
    """One hook definition as the adapter decoded it: the hook's fields and its events."""

    hook_id: str
    hook: HookInput
    triggers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a template did: the hooks it made (with their new signing secrets, shown
    this once) and the names of those it had made before and left as they are."""

    template: Template
    project: str
    created: list[Hook]
    already_applied: list[str]


class TemplateService:
    """Validates and applies every template operation; the store keeps each one atomic."""

    def __init__(
        self,
        store: Store,
        hooks: HookService,
        now: Callable[[], datetime],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._hooks = hooks
        self._now = now
        self._on_change = on_change

    async def create_template(
        self, parent: str, template_id: str, display_name: str, definitions: Sequence[DefinitionInput]
    ) -> Template:
        company = names.parse_company("parent", parent)
        template_id = names.check_template_id("template_id", template_id)
        hooks = await self._definitions(definitions)
        now = self._now()
        template = Template(
            name=names.template_name(company, template_id),
            company_id=company,
            display_name=_display_name(display_name),
            hooks=hooks,
            revision=1,
            create_time=now,
            update_time=now,
        )
        await self._store.create_template(template)
        return template

    async def get_template(self, name: str) -> Template:
        names.parse_template_name("name", name)
        return await self._store.get_template(name)

    async def list_templates(self, parent: str, size: int, token: str) -> Page[Template]:
        company = names.parse_company("parent", parent)
        limit = paging.page_size(size)
        after = paging.decode_token(token, parent)
        found = await self._store.list_templates(company, after=after, limit=limit + 1)
        return paging.cut(found, limit, lambda t: t.name, parent)

    async def update_template(
        self, name: str, display_name: str, definitions: Sequence[DefinitionInput], mask: Sequence[str]
    ) -> Template:
        """Change the fields ``mask`` names; the revision goes up by one. Hooks made from an
        earlier revision stay as they were made."""
        names.parse_template_name("template.name", name)
        if not mask:
            raise InvalidArgument(f"update_mask: required; name the fields to change ({', '.join(TEMPLATE_FIELDS)})")
        for path in mask:
            if path not in TEMPLATE_FIELDS:
                raise InvalidArgument(
                    f"update_mask: unknown field {quote(path)}; updatable: {', '.join(TEMPLATE_FIELDS)}"
                )
        values: dict[str, object] = {}
        if "display_name" in mask:
            values["display_name"] = _display_name(display_name)
        if "hooks" in mask:
            values["hooks"] = await self._definitions(definitions)
        now = self._now()

        def change(current: Template) -> Template:
            return replace(current, revision=current.revision + 1, update_time=now, **values)  # type: ignore[arg-type]

        return await self._store.update_template(name, change)

    async def delete_template(self, name: str) -> None:
        names.parse_template_name("name", name)
        await self._store.delete_template(name)

    async def apply_template(self, name: str, project: str) -> Applied:
        """Make the project's hooks from the template, all or none (see the module's docstring).

        Raises NotFound (no such template), InvalidArgument (a project of another company) and
        AlreadyExists (the project has a hook of a definition's name not made from this
        template; nothing is made then).
        """
        company, _ = names.parse_template_name("template", name)
        where = names.parse_project("project", project)
        if where.company_id != company:
            raise InvalidArgument(
                f"project: {project} belongs to company {where.company_id}; template {name} can only be applied"
                f" to projects of company {company}"
            )
        template = await self._store.get_template(name)
        now = self._now()
        made: list[tuple[Hook, list[Trigger]]] = []
        already: list[str] = []
        for index, definition in enumerate(template.hooks):
            hook_name = names.hook_name(where, definition.hook_id)
            try:
                existing = await self._store.get_hook(hook_name)
            except NotFound:
                hook = _hook(definition, hook_name, where, template, now)
                triggers = [Trigger(names.trigger_name(hook_name, r, e), r, e, now) for r, e in definition.triggers]
                made.append((hook, triggers))
                continue
            if existing.template != name:
                raise AlreadyExists(
                    f"template.hooks[{index}]: {project} already has a hook {hook_name}, not made from {name};"
                    f" rename the definition's hook_id or delete that hook, then apply again (nothing was made)"
                )
            already.append(hook_name)
        if made:
            await self._store.create_hooks(made)
            self._on_change()
        return Applied(template, project, [h for h, _ in made], already)

    async def apply_on_project_created(self, template: str, company_id: int, project_id: int) -> str:
        """Apply the template a ``Projects`` × ``create`` event named (``project_template``:
        a template id or full name); "" when done, else why not. Never raises: the event is
        stored already, and a template that cannot be applied is logged and reported."""
        name = project_template_name(template, company_id)
        project = str(names.Parent(company_id, project_id))
        try:
            applied = await self.apply_template(name, project)
        except TidingsError as exc:  # unknown, another company's, a hook name taken, the store away
            log.warning(
                "project template not applied", extra={"template": template, "project": project, "error": str(exc)}
            )
            return str(exc)
        log.info(
            "project template applied",
            extra={"template": name, "project": project, "created": len(applied.created)},
        )
        return ""

    async def _definitions(self, given: Sequence[DefinitionInput]) -> tuple[HookDefinition, ...]:
        if len(given) > MAX_DEFINITIONS:
            raise InvalidArgument(f"template.hooks: {len(given)} is more than the {MAX_DEFINITIONS} allowed")
        checked: list[HookDefinition] = []
        seen: dict[str, int] = {}
        for index, d in enumerate(given):
            field = f"template.hooks[{index}]"
            if d.hook_id in seen:
                raise InvalidArgument(
                    f"{field}.hook_id: {quote(d.hook_id)} is already the id of template.hooks[{seen[d.hook_id]}]"
                )
            seen[d.hook_id] = index
            checked.append(await self._hooks.check_definition(field, d.hook_id, d.hook, d.triggers))
        return tuple(checked)


def project_template_name(template: str, company_id: int) -> str:
    """The full name of the template a ``Projects`` × ``create`` event named by id or full name."""
    return template if "/" in template else names.template_name(company_id, template)


def _hook(definition: HookDefinition, name: str, where: names.Parent, template: Template, now: datetime) -> Hook:
    return Hook(
        name=name,
        company_id=where.company_id,
        project_id=where.project_id,
        display_name=definition.display_name,
        destination_url=definition.destination_url,
        authorization_header=definition.authorization_header,
        payload_format=definition.payload_format,
        status=HookStatus.ACTIVE,
        create_time=now,
        update_time=now,
        retry_policy=definition.retry_policy,
        ordering=definition.ordering,
        max_concurrency=definition.max_concurrency,
        signing_disabled=definition.signing_disabled,
        signing_secret=new_secret(),
        template=template.name,
        template_revision=template.revision,
    )


def _display_name(value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidArgument(
            f"template.display_name: {len(value)} characters is longer than the {MAX_DISPLAY_NAME} allowed"
        )
    return value
