"""The Store contract for project templates and for hooks made in a batch (applying one)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tidings_server.domain.errors import AlreadyExists, NotFound
from tidings_server.domain.model import HookDefinition, Ordering, RetryPolicy, Template
from tidings_server.domain.names import Parent
from tidings_server.domain.ports import Store
from tidings_server.testing.stores.samples import T0, T1, make_event, make_hook, make_trigger

TEMPLATE = "companies/1/templates/standard"


def make_template(name: str = TEMPLATE, **changes: object) -> Template:
    """A template with two definitions, every field set."""
    erp = HookDefinition(
        hook_id="erp",
        display_name="ERP",
        destination_url="https://erp.example.com/in",
        authorization_header="Bearer 0123456789abcdef",
        payload_format="procore.v4",
        triggers=(("RFIs", "create"), ("RFIs", "update")),
        retry_policy=RetryPolicy(timeout=timedelta(seconds=9), retryable_statuses=frozenset({429, 503})),
        ordering=Ordering.PER_RESOURCE,
        max_concurrency=3,
        signing_disabled=True,
    )
    chat = HookDefinition("chat", "", "https://chat.example.com/in", "", "slack.v1", (("Submittals", "create"),))
    company = int(name.split("/")[1])
    template = Template(name, company, "Standard project", (erp, chat), 1, T0, T0)
    return dataclasses.replace(template, **changes)  # type: ignore[arg-type]


class TemplateStoreContract:
    """What every store must do with templates and with ``create_hooks``."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("define a store fixture yielding an opened, empty store")

    async def test_a_template_round_trips_with_every_field(self, store: Store) -> None:
        template = make_template()
        await store.create_template(template)
        assert await store.get_template(TEMPLATE) == template
        with pytest.raises(AlreadyExists, match=TEMPLATE):
            await store.create_template(make_template(display_name="again"))
        assert await store.get_template(TEMPLATE) == template

    async def test_templates_are_listed_per_company_by_name_in_pages(self, store: Store) -> None:
        for name in ("companies/1/templates/b", "companies/1/templates/a", "companies/2/templates/a"):
            await store.create_template(make_template(name))
        first = await store.list_templates(1, after=None, limit=1)
        assert [t.name for t in first] == ["companies/1/templates/a"]
        rest = await store.list_templates(1, after=first[0].name, limit=10)
        assert [t.name for t in rest] == ["companies/1/templates/b"]
        assert [t.name for t in await store.list_templates(3, after=None, limit=10)] == []

    async def test_list_all_templates_walks_every_company_in_name_order_page_by_page(self, store: Store) -> None:
        names = [f"companies/{c}/templates/{t}" for c, t in ((1, "a"), (1, "b"), (12, "a"), (2, "a"))]
        for name in reversed(names):
            await store.create_template(make_template(name))
        assert [t.name for t in await store.list_all_templates(after=None, limit=100)] == sorted(names)
        walked: list[str] = []
        after: str | None = None
        while page := await store.list_all_templates(after=after, limit=3):
            walked += [t.name for t in page]
            after = page[-1].name
        assert walked == sorted(names)
        assert await store.list_all_templates(after=None, limit=1) == [await store.get_template(sorted(names)[0])]

    async def test_update_template_replaces_it_and_delete_removes_it(self, store: Store) -> None:
        await store.create_template(make_template())
        changed = await store.update_template(
            TEMPLATE, lambda t: dataclasses.replace(t, hooks=t.hooks[:1], revision=2, update_time=T1)
        )
        assert await store.get_template(TEMPLATE) == changed
        assert (changed.revision, len(changed.hooks)) == (2, 1)
        with pytest.raises(ValueError, match="rename"):
            await store.update_template(TEMPLATE, lambda t: dataclasses.replace(t, name=TEMPLATE + "x"))
        await store.delete_template(TEMPLATE)
        for missing in (store.get_template(TEMPLATE), store.delete_template(TEMPLATE)):
            with pytest.raises(NotFound, match=TEMPLATE):
                await missing
        with pytest.raises(NotFound, match=TEMPLATE):
            await store.update_template(TEMPLATE, lambda t: t)

    async def test_create_hooks_stores_every_hook_with_its_triggers(self, store: Store) -> None:
        a = make_hook("companies/1/projects/2/hooks/a", template=TEMPLATE, template_revision=3)
        b = make_hook("companies/1/projects/2/hooks/b")
        await store.create_hooks([(a, [make_trigger(a.name), make_trigger(a.name, "RFIs")]), (b, [])])
        assert await store.list_hooks(Parent(1, 2), after=None, limit=10) == [a, b]
        assert (await store.get_hook(a.name)).template_revision == 3
        assert len(await store.list_triggers(a.name, after=None, limit=10)) == 2
        [published] = await store.publish_events([make_event(1, project=2, resource="RFIs")], T0)
        assert published.deliveries == 1

    async def test_create_hooks_stores_nothing_when_one_name_is_taken(self, store: Store) -> None:
        taken = make_hook("companies/1/projects/2/hooks/b", display_name="first")
        await store.create_hook(taken)
        a = make_hook("companies/1/projects/2/hooks/a")
        b = make_hook("companies/1/projects/2/hooks/b", display_name="second")
        with pytest.raises(AlreadyExists, match=b.name):
            await store.create_hooks([(a, [make_trigger(a.name)]), (b, [make_trigger(b.name)])])
        assert await store.list_hooks(Parent(1, 2), after=None, limit=10) == [taken]
        assert await store.list_triggers(taken.name, after=None, limit=10) == []
