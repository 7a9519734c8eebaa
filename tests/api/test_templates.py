"""TemplateService end to end: a real server on SQLite, templates made, applied (by hand and by
a ``Projects`` create event), applied again, edited after applying, and refused inputs."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.api.test_deliveries import DELIVERED, settled
from tests.harness import Api
from tests.http_sink import Sink, running_sink
from tests.secrets.spelling import found_in
from tidings.v1 import events_pb2, hooks_pb2, templates_pb2, templates_pb2_grpc
from tidings_server.app import Config

COMPANY = "companies/8"
TEMPLATE = "companies/8/templates/standard"
AUTH = "Bearer 0123456789abcdef4e94b"
TP = templates_pb2


@pytest.fixture
def sink() -> Iterator[Sink]:
    with running_sink() as s:
        yield s


@pytest.fixture
def templates(api: Api) -> templates_pb2_grpc.TemplateServiceStub:
    return templates_pb2_grpc.TemplateServiceStub(api.channel)


def definition(hook_id: str, url: str, *pairs: tuple[str, str], auth: str = "") -> TP.HookDefinition:
    return TP.HookDefinition(
        hook_id=hook_id,
        hook=hooks_pb2.Hook(
            display_name=f"{hook_id} hook", destination_url=url, payload_format="procore.v4", authorization_header=auth
        ),
        triggers=[hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in pairs],
    )


def standard(stub: templates_pb2_grpc.TemplateServiceStub, sink: Sink) -> TP.Template:
    return stub.CreateTemplate(
        TP.CreateTemplateRequest(
            parent=COMPANY,
            template_id="standard",
            template=TP.Template(
                display_name="Standard project",
                hooks=[
                    definition("erp", sink.url("/erp"), ("RFIs", "create"), ("RFIs", "update"), auth=AUTH),
                    definition("docs", sink.url("/docs"), ("Submittals", "create")),
                ],
            ),
        )
    )


def hooks_of(api: Api, project: str) -> list[hooks_pb2.Hook]:
    return list(api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=project)).hooks)


def rpc_error(call: object, *args: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_create_get_list_show_the_template_with_its_header_masked(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    created = standard(templates, sink)
    assert (created.name, created.revision, created.display_name) == (TEMPLATE, 1, "Standard project")
    assert [d.hook_id for d in created.hooks] == ["erp", "docs"]
    assert created.hooks[0].hook.authorization_header == "••••••e94b"
    assert [(t.resource_name, t.event_type) for t in created.hooks[0].triggers] == [
        ("RFIs", "create"),
        ("RFIs", "update"),
    ]
    assert templates.GetTemplate(TP.GetTemplateRequest(name=TEMPLATE)) == created
    listed = templates.ListTemplates(TP.ListTemplatesRequest(parent=COMPANY))
    assert [t.name for t in listed.templates] == [TEMPLATE]
    assert not templates.ListTemplates(TP.ListTemplatesRequest(parent="companies/9")).templates


def test_apply_makes_the_projects_hooks_with_new_secrets_and_again_makes_nothing(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    standard(templates, sink)
    project = f"{COMPANY}/projects/1"
    applied = templates.ApplyTemplate(TP.ApplyTemplateRequest(template=TEMPLATE, project=project))
    names = [f"{project}/hooks/erp", f"{project}/hooks/docs"]
    assert [h.name for h in applied.created_hooks] == names
    assert (applied.already_applied, list(applied.existing_hooks), applied.revision) == (False, [], 1)
    secrets = {h.signing_secret for h in applied.created_hooks}
    assert len(secrets) == 2
    assert all(s.startswith("whsec_") for s in secrets)
    for made in hooks_of(api, project):
        assert (made.template, made.template_revision) == (TEMPLATE, 1)
        assert made.signing_secret == ""  # shown once, in the apply response
    erp = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=names[0]))
    assert erp.authorization_header == "••••••e94b"
    triggers = api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=names[0])).triggers
    assert sorted(t.event_type for t in triggers) == ["create", "update"]

    again = templates.ApplyTemplate(TP.ApplyTemplateRequest(template=TEMPLATE, project=project))
    assert (list(again.created_hooks), again.already_applied, list(again.existing_hooks)) == ([], True, names)
    assert [h.name for h in hooks_of(api, project)] == sorted(names)

    # The hooks made deliver: the template's Authorization header reaches the receiver.
    api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, project_id=1, resource_name="RFIs", resource_id=5, event_type="create", user_id=2
                )
            ]
        )
    )
    settled(api, names[0], 1)
    [request] = sink.requests
    assert request.header("authorization") == AUTH


def test_a_template_edited_after_apply_leaves_the_projects_hooks_as_they_were(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    standard(templates, sink)
    project = f"{COMPANY}/projects/2"
    templates.ApplyTemplate(TP.ApplyTemplateRequest(template=TEMPLATE, project=project))
    before = hooks_of(api, project)
    edited = templates.UpdateTemplate(
        TP.UpdateTemplateRequest(
            template=TP.Template(
                name=TEMPLATE, display_name="Renamed", hooks=[definition("erp", sink.url("/v2"), ("RFIs", "delete"))]
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name", "hooks"]),
        )
    )
    assert (edited.revision, edited.display_name, len(edited.hooks)) == (2, "Renamed", 1)
    assert hooks_of(api, project) == before
    assert {h.destination_url for h in before} == {sink.url("/erp"), sink.url("/docs")}
    # A project applied now gets revision 2.
    later = templates.ApplyTemplate(TP.ApplyTemplateRequest(template=TEMPLATE, project=f"{COMPANY}/projects/3"))
    assert [(h.destination_url, h.template_revision) for h in later.created_hooks] == [(sink.url("/v2"), 2)]


def test_a_projects_create_event_naming_the_template_applies_it(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    standard(templates, sink)

    def project_created(project_id: int, template: str) -> events_pb2.PublishedEvent:
        reply = api.events.PublishEvents(
            events_pb2.PublishEventsRequest(
                events=[
                    events_pb2.Event(
                        company_id=8,
                        resource_name="Projects",
                        resource_id=project_id,
                        event_type="create",
                        user_id=2,
                        project_template=template,
                    )
                ]
            )
        )
        [result] = reply.results
        return result

    assert project_created(40, "standard").project_template_error == ""
    assert [(h.name, h.template) for h in hooks_of(api, f"{COMPANY}/projects/40")] == [
        (f"{COMPANY}/projects/40/hooks/docs", TEMPLATE),
        (f"{COMPANY}/projects/40/hooks/erp", TEMPLATE),
    ]
    assert project_created(41, TEMPLATE).project_template_error == ""
    assert len(hooks_of(api, f"{COMPANY}/projects/41")) == 2
    # An unknown template never blocks the event: it is stored and the trouble reported.
    unknown = project_created(42, "nonesuch")
    assert unknown.event_id
    assert unknown.project_template_error == "template companies/8/templates/nonesuch does not exist"
    assert hooks_of(api, f"{COMPANY}/projects/42") == []


def test_an_event_that_applies_a_template_is_an_audited_change(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    """Publishing is the data plane, but a Projects create event naming a template makes hooks:
    that call gets the audit line every control-plane change gets; other batches none."""
    standard(templates, sink)
    created = events_pb2.Event(company_id=8, resource_name="Projects", resource_id=50, event_type="create", user_id=2)
    named = events_pb2.Event()
    named.CopyFrom(created)
    named.resource_id, named.project_template = 51, "standard"
    with caplog.at_level(logging.INFO, logger="tidings_server.audit"):
        api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[created]))
        assert [r for r in caplog.records if r.name == "tidings_server.audit"] == []
        api.events.PublishEvents(events_pb2.PublishEventsRequest(events=[created, named]))
    lines = [r for r in caplog.records if r.name == "tidings_server.audit"]
    assert [(r.method, r.resource, r.outcome, r.principal) for r in lines] == [  # type: ignore[attr-defined]
        ("PublishEvents", "events[1].project_template=standard", "ok", "none (--no-auth)")
    ]
    assert len(hooks_of(api, f"{COMPANY}/projects/51")) == 2


def test_a_template_not_applied_is_recorded_for_the_admins_who_subscribe(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    standard(templates, sink)
    admins = api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=COMPANY,
            hook_id="admins",
            hook=hooks_pb2.Hook(destination_url=sink.url("/admins"), payload_format="procore.v4"),
        )
    )
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=admins.name,
            triggers=[hooks_pb2.Trigger(resource_name="Webhook Templates", event_type="not_applied")],
        )
    )
    taken = f"{COMPANY}/projects/43"  # a hook of a definition's name already there: not applied either
    api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=taken,
            hook_id="docs",
            hook=hooks_pb2.Hook(destination_url=sink.url("/mine"), payload_format="procore.v4"),
        )
    )
    published = api.events.PublishEvents(
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, resource_name="Projects", resource_id=project, event_type="create", user_id=2,
                    project_template=template,
                )
                for project, template in ((42, "nonesuch"), (43, "standard"), (44, "standard"))
            ]
        )
    )  # fmt: skip
    assert [bool(r.project_template_error) for r in published.results] == [True, True, False]
    # Both troubles are in the admin hook's history, newest first, and reached its endpoint.
    rows = settled(api, admins.name, 2)
    assert [(d.event.resource_name, d.event.event_type, d.event.resource_id) for d in rows] == [
        ("Webhook Templates", "not_applied", 43),
        ("Webhook Templates", "not_applied", 42),
    ]
    assert [[r.name for r in d.event.related_resources] for d in rows] == [
        [taken, TEMPLATE],
        [f"{COMPANY}/projects/42", f"{COMPANY}/templates/nonesuch"],
    ]
    assert {d.status for d in rows} == {DELIVERED}
    assert {d.event.user_id for d in rows} == {1}
    assert {d.event.metadata.source_application_id for d in rows} == {"tidings"}
    bodies = [json.loads(body) for _, body in sink.received]
    told = [b for b in bodies if b.get("resource_type") == "Webhook Templates"]  # Procore v4's shape
    assert sorted((b["resource_id"], b["reason"]) for b in told) == [("42", "not_applied"), ("43", "not_applied")]


def test_bad_inputs_are_refused_with_their_codes_and_write_nothing(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink
) -> None:
    standard(templates, sink)
    apply = templates.ApplyTemplate
    unknown = rpc_error(
        apply, TP.ApplyTemplateRequest(template=f"{COMPANY}/templates/nope", project=f"{COMPANY}/projects/1")
    )
    assert unknown.code() is grpc.StatusCode.NOT_FOUND
    assert unknown.details() == "template companies/8/templates/nope does not exist"
    wrong = rpc_error(apply, TP.ApplyTemplateRequest(template=TEMPLATE, project="companies/9/projects/1"))
    assert wrong.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert wrong.details() == (
        "project: companies/9/projects/1 belongs to company 9; template companies/8/templates/standard can only be"
        " applied to projects of company 8"
    )
    assert hooks_of(api, "companies/9/projects/1") == []
    # The project already has a hook called "docs", made by hand: nothing at all is made.
    project = f"{COMPANY}/projects/5"
    api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(
            parent=project,
            hook_id="docs",
            hook=hooks_pb2.Hook(destination_url=sink.url("/mine"), payload_format="procore.v4"),
        )
    )
    taken = rpc_error(apply, TP.ApplyTemplateRequest(template=TEMPLATE, project=project))
    assert taken.code() is grpc.StatusCode.ALREADY_EXISTS
    assert taken.details() == (
        f"template.hooks[1]: {project} already has a hook {project}/hooks/docs, not made from {TEMPLATE};"
        " rename the definition's hook_id or delete that hook, then apply again (nothing was made)"
    )
    assert [h.name for h in hooks_of(api, project)] == [f"{project}/hooks/docs"]
    # Definitions are checked as CreateHook checks a project hook.
    company_resource = rpc_error(
        templates.CreateTemplate,
        TP.CreateTemplateRequest(
            parent=COMPANY,
            template_id="bad",
            template=TP.Template(hooks=[definition("a", sink.url(), ("Projects", "create"))]),
        ),
    )
    assert company_resource.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert company_resource.details() == (
        "template.hooks[0].triggers[0] ('Projects', 'create'): 'Projects' is a company-level resource;"
        " project hooks cannot select it"
    )
    repeated = rpc_error(
        templates.CreateTemplate,
        TP.CreateTemplateRequest(
            parent=COMPANY,
            template_id="bad",
            template=TP.Template(hooks=[definition("a", sink.url()), definition("a", sink.url())]),
        ),
    )
    assert repeated.details() == "template.hooks[1].hook_id: 'a' is already the id of template.hooks[0]"
    exists = rpc_error(templates.CreateTemplate, TP.CreateTemplateRequest(parent=COMPANY, template_id="standard"))
    assert exists.code() is grpc.StatusCode.ALREADY_EXISTS
    assert [t.name for t in templates.ListTemplates(TP.ListTemplatesRequest(parent=COMPANY)).templates] == [TEMPLATE]
    not_projects = rpc_error(
        api.events.PublishEvents,
        events_pb2.PublishEventsRequest(
            events=[
                events_pb2.Event(
                    company_id=8, project_id=1, resource_name="RFIs", resource_id=1, event_type="create", user_id=2,
                    project_template="standard",
                )
            ]
        ),
    )  # fmt: skip
    assert not_projects.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert not_projects.details() == (
        "events[0].project_template: only a company-level Projects create event can name a template to apply"
    )


def test_a_templates_authorization_header_is_sealed_at_rest(
    api: Api, templates: templates_pb2_grpc.TemplateServiceStub, sink: Sink, server_config: Config
) -> None:
    standard(templates, sink)
    path = server_config.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        [(stored,)] = conn.execute("SELECT hooks FROM templates").fetchall()
    assert "0123456789abcdef" not in stored
    # The raw bytes of the file and its WAL (not yet checkpointed), in every spelling.
    files = [Path(path), Path(path + "-wal")]
    assert files[1].stat().st_size > 0
    assert found_in(files, [AUTH]) == []
