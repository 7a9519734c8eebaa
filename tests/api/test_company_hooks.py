"""Company hooks on project-level resources, end to end: a real server on SQLite delivering to a
real receiver, the project list narrowing what arrives, and the history under a project."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.api.test_deliveries import listed, settled
from tests.harness import Api
from tests.http_sink import Sink, running_sink
from tidings.v1 import catalog_pb2, deliveries_pb2, events_pb2, hooks_pb2

COMPANY = "companies/8"
D = deliveries_pb2


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


def company_hook(api: Api, url: str, projects: tuple[int, ...] = (), hook_id: str = "") -> hooks_pb2.Hook:
    hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=COMPANY,
            hook_id=hook_id,
            hook=hooks_pb2.Hook(destination_url=url, payload_format="procore.v4", projects=projects),
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name,
            triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type=e) for e in ("create", "update")],
        )
    )
    return hook


def publish_rfis(api: Api, *projects: int) -> dict[int, str]:
    """One RFI created in each project; the event id per project."""
    reply = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8,
                    project_id=p,
                    resource_name="RFIs",
                    resource_id=100 + p,
                    event_type="create",
                    user_id=5447,
                )
                for p in projects
            ]
        )
    )
    return {p: r.event_id for p, r in zip(projects, reply.results, strict=True)}


def test_a_company_hook_on_rfis_receives_every_projects_rfis(api: Api, sink: Sink) -> None:
    every = company_hook(api, sink.url("/every"), hook_id="every")
    some = company_hook(api, sink.url("/some"), projects=(3, 1), hook_id="some")
    assert some.projects == [1, 3]  # kept in order, whatever order it was given in
    assert every.projects == []
    ids = publish_rfis(api, 1, 2, 3)
    settled(api, every.name, 3)
    settled(api, some.name, 2)
    assert sorted(listed(api, parent=every.name)) == sorted(ids.values())
    assert sorted(listed(api, parent=some.name)) == sorted([ids[1], ids[3]])
    assert sink.hits == {"/every": 3, "/some": 2}


def test_project_history_shows_the_company_hooks_deliveries_beside_the_projects_own(api: Api, sink: Sink) -> None:
    company = company_hook(api, sink.url("/company"), hook_id="company")
    own = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=f"{COMPANY}/projects/2",
            hook=hooks_pb2.Hook(destination_url=sink.url("/own"), payload_format="procore.v4"),
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=own.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="create")]
        )
    )
    ids = publish_rfis(api, 1, 2)
    rows = settled(api, f"{COMPANY}/projects/2", 2)
    assert sorted((r.hook, r.event.id) for r in rows) == sorted([(company.name, ids[2]), (own.name, ids[2])])
    assert {r.status for r in rows} == {D.DELIVERY_STATUS_DELIVERED}
    assert [r.hook for r in settled(api, f"{COMPANY}/projects/1", 1)] == [company.name]


def test_the_project_list_is_editable_and_takes_effect_on_the_next_event(api: Api, sink: Sink) -> None:
    hook = company_hook(api, sink.url("/rfis"), projects=(1,))
    updated = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, projects=[2]), update_mask=field_mask_pb2.FieldMask(paths=["projects"])
        )
    )
    assert updated.projects == [2]
    assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).projects == [2]
    ids = publish_rfis(api, 1, 2)
    settled(api, hook.name, 1)
    assert listed(api, parent=hook.name) == [ids[2]]
    api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name), update_mask=field_mask_pb2.FieldMask(paths=["projects"])
        )
    )
    later = publish_rfis(api, 1, 3)
    settled(api, hook.name, 3)
    assert sorted(listed(api, parent=hook.name)) == sorted([ids[2], later[1], later[3]])


@pytest.mark.parametrize(
    ("parent", "projects", "message"),
    [
        (
            f"{COMPANY}/projects/2",
            [1],
            "hook.projects: only a company hook takes a project list; this hook belongs to project 2",
        ),
        (COMPANY, [1, 0], "hook.projects[1]: 0 is not a project id (1 to 9223372036854775807)"),
        (COMPANY, [4, 4], "hook.projects[1]: project 4 is listed twice"),
    ],
)
def test_bad_project_lists_are_refused_naming_the_field(
    api: Api, sink: Sink, parent: str, projects: list[int], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        api.hooks.CreateHook(
            hooks_pb2.CreateHookRequest(
                parent=parent,
                hook=hooks_pb2.Hook(destination_url=sink.url(), payload_format="procore.v4", projects=projects),
            )
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    assert not api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=parent)).hooks


def test_the_catalog_says_which_hooks_may_select_each_resource(api: Api) -> None:
    def scopes(scope: int) -> dict[str, list[int]]:
        request = catalog_pb2.ListResourcesRequest(scope=scope, page_size=1000)  # type: ignore[arg-type]
        return {r.resource_name: list(r.hook_scopes) for r in api.catalog.ListResources(request).resources}

    company, project = catalog_pb2.SCOPE_COMPANY, catalog_pb2.SCOPE_PROJECT
    assert scopes(project)["RFIs"] == [company, project]
    assert scopes(company)["Projects"] == [company]


def test_a_company_hooks_overview_narrows_to_one_project(api: Api, sink: Sink) -> None:
    hook = company_hook(api, sink.url("/rfis"))
    publish_rfis(api, 1, 2, 2)
    settled(api, hook.name, 3)
    whole = api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name))
    assert (whole.delivered_count, whole.project_id) == (3, 0)
    two = api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name, project_id=2))
    assert (two.delivered_count, two.queued_count, two.success_rate, two.project_id) == (2, 0, 1.0, 2)
    three = api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=hook.name, project_id=3))
    assert (three.delivered_count, three.success_rate) == (0, 0.0)
    project_hook = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=f"{COMPANY}/projects/2",
            hook=hooks_pb2.Hook(destination_url=sink.url(), payload_format="procore.v4"),
        )
    )
    with pytest.raises(grpc.RpcError) as caught:
        api.deliveries.GetHookOverview(D.GetHookOverviewRequest(name=project_hook.name, project_id=2))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        f"project_id: {project_hook.name} is a project hook; only a company hook's overview is narrowed to a project"
    )
