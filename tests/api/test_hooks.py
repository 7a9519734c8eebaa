"""HookService end to end: every RPC against a real server on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.harness import Api, ServerThread, restarted
from tidings.v1 import hooks_pb2

PROJECT = "companies/8/projects/6778"
COMPANY = "companies/8"
AUTH = "Basic c3a24b8208ac5199d083d54a1234e94b"


def new_hook(api: Api, parent: str = PROJECT, hook_id: str = "", **fields: object) -> hooks_pb2.Hook:
    values: dict[str, object] = {
        "display_name": "RFI sync",
        "destination_url": "https://hooks.example.com/procore",
        "payload_format": "procore.v4",
    }
    values.update(fields)
    return api.hooks.CreateHook(
        hooks_pb2.CreateHookRequest(parent=parent, hook_id=hook_id, hook=hooks_pb2.Hook(**values))  # type: ignore[arg-type]
    )


def as_read(created: hooks_pb2.Hook) -> hooks_pb2.Hook:
    """``created`` as reads show it: the signing secret is only ever in the creation reply."""
    assert created.signing_secret.startswith("whsec_")
    read = hooks_pb2.Hook()
    read.CopyFrom(created)
    read.ClearField("signing_secret")
    return read


def all_hooks(api: Api, parent: str, **kw: object) -> Iterator[hooks_pb2.Hook]:
    token = ""
    while True:
        page = api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=parent, page_token=token, **kw))  # type: ignore[arg-type]
        yield from page.hooks
        token = page.next_page_token
        if not token:
            return


def test_create_get_and_mask_authorization(api: Api) -> None:
    created = new_hook(api, authorization_header=AUTH)
    assert created.name.startswith(f"{PROJECT}/hooks/")
    assert created.status == hooks_pb2.HOOK_STATUS_ACTIVE
    assert created.authorization_header == "••••••" + AUTH[-4:]
    assert created.create_time == created.update_time
    assert created.create_time.seconds > 0
    fetched = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=created.name))
    assert fetched == as_read(created)
    assert AUTH not in str(fetched)


def test_company_hook_and_explicit_id(api: Api) -> None:
    hook = new_hook(api, parent=COMPANY, hook_id="erp-sync", payload_format="procore.v2")
    assert hook.name == "companies/8/hooks/erp-sync"
    with pytest.raises(grpc.RpcError) as err:
        new_hook(api, parent=COMPANY, hook_id="erp-sync")
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "companies/8/hooks/erp-sync" in (err.value.details() or "")


def test_list_pages_filters_and_scopes(api: Api) -> None:
    made = [
        new_hook(api, hook_id=f"h{i:02d}", payload_format="procore.v3" if i % 3 else "procore.v4") for i in range(7)
    ]
    new_hook(api, parent="companies/8/projects/9", hook_id="other-project")
    new_hook(api, parent=COMPANY, hook_id="company-level")
    first = api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=PROJECT, page_size=3))
    assert [h.name for h in first.hooks] == [h.name for h in made[:3]]
    assert first.next_page_token
    assert [h.name for h in all_hooks(api, PROJECT, page_size=3)] == [h.name for h in made]
    v4 = [h.name for h in all_hooks(api, PROJECT, page_size=1, filter='payload_format = "procore.v4"')]
    assert v4 == [made[0].name, made[3].name, made[6].name]
    assert [h.name for h in all_hooks(api, COMPANY)] == ["companies/8/hooks/company-level"]
    every_project = [h.name for h in all_hooks(api, "companies/8/projects/-")]
    assert every_project == sorted([h.name for h in made] + ["companies/8/projects/9/hooks/other-project"])


def test_update_fields_and_status_filter(api: Api) -> None:
    hook = new_hook(api, authorization_header=AUTH)
    update = hooks_pb2.Hook(
        name=hook.name,
        display_name="renamed",
        destination_url="https://other.example.com/in",
        authorization_header="Bearer tok-XYZ-123456789",
        status=hooks_pb2.HOOK_STATUS_PAUSED,
        payload_format="ignored-because-not-in-mask",
    )
    mask = field_mask_pb2.FieldMask(paths=["display_name", "destination_url", "authorization_header", "status"])
    updated = api.hooks.UpdateHook(hooks_pb2.UpdateHookRequest(hook=update, update_mask=mask))
    assert (updated.display_name, updated.destination_url, updated.status) == (
        "renamed",
        "https://other.example.com/in",
        hooks_pb2.HOOK_STATUS_PAUSED,
    )
    assert updated.authorization_header == "••••••6789"
    assert updated.payload_format == "procore.v4"
    assert updated.create_time == hook.create_time
    assert updated.update_time.ToDatetime() >= hook.update_time.ToDatetime()
    only_name = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(name=hook.name, display_name="again"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert (only_name.display_name, only_name.status, only_name.authorization_header) == (
        "again",
        hooks_pb2.HOOK_STATUS_PAUSED,
        "••••••6789",
    )
    paused = [h.name for h in all_hooks(api, PROJECT, filter="status = PAUSED")]
    active = [h.name for h in all_hooks(api, PROJECT, filter="status = ACTIVE")]
    assert (paused, active) == ([hook.name], [])


def test_payload_format_is_immutable(api: Api) -> None:
    hook = new_hook(api)
    with pytest.raises(grpc.RpcError) as err:
        api.hooks.UpdateHook(
            hooks_pb2.UpdateHookRequest(
                hook=hooks_pb2.Hook(name=hook.name, payload_format="procore.v2"),
                update_mask=field_mask_pb2.FieldMask(paths=["payload_format"]),
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "delete the hook and create it again" in (err.value.details() or "")
    assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)).payload_format == "procore.v4"


def test_triggers_add_idempotent_list_delete(api: Api) -> None:
    hook = new_hook(api)
    pairs = [("RFIs", "create"), ("RFIs", "update"), ("RFI Replies", "delete")]
    added = api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in pairs]
        )
    ).triggers
    assert [(t.resource_name, t.event_type) for t in added] == pairs
    assert [t.name for t in added] == [
        f"{hook.name}/triggers/rfis.create",
        f"{hook.name}/triggers/rfis.update",
        f"{hook.name}/triggers/rfi-replies.delete",
    ]
    again = api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name,
            triggers=[
                hooks_pb2.Trigger(resource_name="RFIs", event_type="create"),
                hooks_pb2.Trigger(resource_name="RFIs", event_type="delete"),
            ],
        )
    ).triggers
    assert again[0] == added[0]  # same name and original create_time
    listed = api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook.name, page_size=2))
    assert len(listed.triggers) == 2
    assert listed.next_page_token
    rest = api.hooks.ListTriggers(
        hooks_pb2.ListTriggersRequest(parent=hook.name, page_size=2, page_token=listed.next_page_token)
    )
    names = [t.name for t in [*listed.triggers, *rest.triggers]]
    assert names == sorted(t.name for t in [*added, again[1]])
    assert not rest.next_page_token
    api.hooks.BatchDeleteTriggers(
        hooks_pb2.BatchDeleteTriggersRequest(parent=hook.name, names=[added[0].name, added[2].name])
    )
    left = api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook.name)).triggers
    assert [t.name for t in left] == sorted([added[1].name, again[1].name])
    with pytest.raises(grpc.RpcError) as err:
        api.hooks.BatchDeleteTriggers(hooks_pb2.BatchDeleteTriggersRequest(parent=hook.name, names=[added[0].name]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert added[0].name in (err.value.details() or "")
    api.hooks.BatchDeleteTriggers(
        hooks_pb2.BatchDeleteTriggersRequest(parent=hook.name, names=[added[0].name, added[1].name], allow_missing=True)
    )
    assert [t.name for t in api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook.name)).triggers] == [
        again[1].name
    ]


def test_company_hooks_select_company_resources(api: Api) -> None:
    hook = new_hook(api, parent=COMPANY)
    added = api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="Projects", event_type="create")]
        )
    ).triggers
    assert added[0].name == f"{hook.name}/triggers/projects.create"


def test_delete_hook_removes_triggers(api: Api) -> None:
    hook = new_hook(api, hook_id="doomed")
    api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="create")]
        )
    )
    api.hooks.DeleteHook(hooks_pb2.DeleteHookRequest(name=hook.name))
    for call in (
        lambda: api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)),
        lambda: api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook.name)),
        lambda: api.hooks.DeleteHook(hooks_pb2.DeleteHookRequest(name=hook.name)),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Re-creating the same name starts with no triggers.
    again = new_hook(api, hook_id="doomed")
    assert list(api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=again.name)).triggers) == []


def test_everything_persists_across_restart(server: ServerThread) -> None:
    api = Api.connect(server.port)
    hook = new_hook(api, authorization_header=AUTH, hook_id="durable")
    triggers = api.hooks.BatchCreateTriggers(
        hooks_pb2.BatchCreateTriggersRequest(
            parent=hook.name, triggers=[hooks_pb2.Trigger(resource_name="RFIs", event_type="update")]
        )
    ).triggers
    api.channel.close()
    second = restarted(server)
    try:
        api = Api.connect(second.port)
        assert api.hooks.GetHook(hooks_pb2.GetHookRequest(name=hook.name)) == as_read(hook)
        assert list(api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook.name)).triggers) == list(triggers)
        api.channel.close()
    finally:
        second.stop()


def test_delivery_settings_default_create_update(api: Api) -> None:
    plain = new_hook(api)
    assert plain.ordering == hooks_pb2.DELIVERY_ORDERING_UNORDERED
    assert plain.max_concurrency == 8
    policy = plain.retry_policy
    assert (
        policy.timeout.seconds,
        policy.retry_window.seconds,
        policy.initial_backoff.seconds,
        policy.max_backoff.seconds,
    ) == (5, 12 * 3600, 1, 3600)
    assert [(r.first, r.last) for r in policy.retryable_statuses] == [(408, 0), (429, 0), (500, 599)]

    tuned = new_hook(
        api,
        retry_policy=hooks_pb2.RetryPolicy(
            timeout=duration_pb2.Duration(seconds=10),
            retry_window=duration_pb2.Duration(seconds=3600),
            initial_backoff=duration_pb2.Duration(seconds=2),
            max_backoff=duration_pb2.Duration(seconds=60),
            retryable_statuses=[hooks_pb2.StatusRange(first=503), hooks_pb2.StatusRange(first=429)],
        ),
        ordering=hooks_pb2.DELIVERY_ORDERING_PER_RESOURCE,
        max_concurrency=4,
    )
    fetched = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=tuned.name))
    assert fetched == as_read(tuned)
    statuses = [(r.first, r.last) for r in fetched.retry_policy.retryable_statuses]
    assert (fetched.retry_policy.timeout.seconds, statuses) == (10, [(429, 0), (503, 0)])
    assert (fetched.ordering, fetched.max_concurrency) == (hooks_pb2.DELIVERY_ORDERING_PER_RESOURCE, 4)

    updated = api.hooks.UpdateHook(
        hooks_pb2.UpdateHookRequest(
            hook=hooks_pb2.Hook(
                name=tuned.name,
                retry_policy=hooks_pb2.RetryPolicy(timeout=duration_pb2.Duration(seconds=30)),
                ordering=hooks_pb2.DELIVERY_ORDERING_UNORDERED,
                max_concurrency=16,
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["retry_policy", "ordering", "max_concurrency"]),
        )
    )
    # The whole policy is replaced: fields not given take the defaults again.
    assert (updated.retry_policy.timeout.seconds, updated.retry_policy.initial_backoff.seconds) == (30, 1)
    assert (updated.ordering, updated.max_concurrency) == (hooks_pb2.DELIVERY_ORDERING_UNORDERED, 16)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"retry_policy": hooks_pb2.RetryPolicy(timeout=duration_pb2.Duration(nanos=500_000_000))},
            "hook.retry_policy.timeout: 0.5 s is outside 1 s to 60 s",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(retry_window=duration_pb2.Duration(seconds=73 * 3600))},
            "hook.retry_policy.retry_window: 262800 s is outside 60 s to 259200 s",
        ),
        (
            {
                "retry_policy": hooks_pb2.RetryPolicy(
                    initial_backoff=duration_pb2.Duration(seconds=60), max_backoff=duration_pb2.Duration(seconds=10)
                )
            },
            "hook.retry_policy.max_backoff: 10 s is less than initial_backoff 60 s",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(timeout=duration_pb2.Duration(seconds=-5))},
            "hook.retry_policy.timeout: must not be negative",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(retryable_statuses=[hooks_pb2.StatusRange(first=302)])},
            "hook.retry_policy.retryable_statuses: 302 is not an HTTP error status",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(retryable_statuses=[hooks_pb2.StatusRange(first=503, last=500)])},
            "hook.retry_policy.retryable_statuses[0]: last 500 is below first 503",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(retryable_statuses=[hooks_pb2.StatusRange(first=410)])},
            "410 Gone always disables the hook",
        ),
        (
            {"retry_policy": hooks_pb2.RetryPolicy(retryable_statuses=[hooks_pb2.StatusRange(first=500)] * 51)},
            "hook.retry_policy.retryable_statuses: 51 ranges is more than the 50 allowed",
        ),
        ({"max_concurrency": 65}, "hook.max_concurrency: 65 is outside 1 to 64"),
        ({"max_concurrency": -1}, "hook.max_concurrency: -1 is outside 1 to 64"),
        ({"ordering": 9}, "hook.ordering: 9 is not a known delivery ordering"),
    ],
)
def test_bad_delivery_settings(api: Api, fields: dict[str, object], problem: str) -> None:
    hook = hooks_pb2.Hook(destination_url="https://hooks.example.com/in", payload_format="procore.v4", **fields)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as err:
        api.hooks.CreateHook(hooks_pb2.CreateHookRequest(parent=PROJECT, hook=hook))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.value.details() or "")
    assert list(all_hooks(api, PROJECT)) == []
