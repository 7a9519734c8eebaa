"""Bad inputs to HookService and CatalogService: the exact status, a message that names the problem,
and stored state left exactly as it was.

Every row runs against one server per module, seeded once with a project hook with a few triggers,
a paused project hook and a company hook. Each row compares a full snapshot (every hook, with all
its fields, and every trigger) with the seeded baseline before and after its call: a row that
wrongly changes something fails itself, and later rows then fail saying that an earlier case changed
the state. The atomicity tests at the end change state on purpose, so each gets a server of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.harness import Api, ServerThread, secrets_key
from tidings.v1 import catalog_pb2, hooks_pb2
from tidings_server.app import Config

COMPANY = "companies/8"
PROJECT = "companies/8/projects/6778"
RFI_HOOK = f"{PROJECT}/hooks/rfi-sync"
SUBMITTAL_HOOK = f"{PROJECT}/hooks/submittal-sync"
COMPANY_HOOK = f"{COMPANY}/hooks/erp-sync"
MISSING_HOOK = f"{PROJECT}/hooks/no-such-hook"
# Company 8 and every one of its projects, plus company 1, where a wrongly normalized
# "companies/01" would put a hook.
SNAPSHOT_PARENTS = (COMPANY, f"{COMPANY}/projects/-", "companies/1", "companies/1/projects/-")
URL = "https://hooks.example.com/procore"
AUTH = "Bearer 5f2b9c1e0d7a4e94b"
SEEDED_TRIGGERS: dict[str, list[tuple[str, str]]] = {
    RFI_HOOK: [("RFIs", "create"), ("RFIs", "update"), ("RFI Replies", "delete")],
    SUBMITTAL_HOOK: [("Submittals", "create")],
    COMPANY_HOOK: [("Projects", "create"), ("Bids", "update")],
}

Status: TypeAlias = hooks_pb2.HookStatus.ValueType
Call = Callable[[Api], object]
Snapshot = dict[str, tuple[hooks_pb2.Hook, list[hooks_pb2.Trigger]]]

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


# -- state ------------------------------------------------------------------------------------


def seed(api: Api) -> None:
    """The state every case starts from: two project hooks and a company hook, with triggers."""
    hooks = [
        (PROJECT, "rfi-sync", "procore.v4", AUTH, hooks_pb2.HOOK_STATUS_ACTIVE),
        (PROJECT, "submittal-sync", "procore.v3", "", hooks_pb2.HOOK_STATUS_PAUSED),
        (COMPANY, "erp-sync", "procore.v2", "Basic ZXJwOnNlY3JldA==", hooks_pb2.HOOK_STATUS_ACTIVE),
    ]
    for parent, hook_id, payload_format, auth, status in hooks:
        hook = hooks_pb2.Hook(
            display_name=f"{hook_id} hook",
            destination_url=f"{URL}/{hook_id}",
            authorization_header=auth,
            payload_format=payload_format,
            status=status,
        )
        created = api.hooks.CreateHook(hooks_pb2.CreateHookRequest(parent=parent, hook_id=hook_id, hook=hook))
        api.hooks.BatchCreateTriggers(
            hooks_pb2.BatchCreateTriggersRequest(parent=created.name, triggers=triggers(SEEDED_TRIGGERS[created.name]))
        )


def triggers(pairs: Sequence[tuple[str, str]]) -> list[hooks_pb2.Trigger]:
    return [hooks_pb2.Trigger(resource_name=r, event_type=e) for r, e in pairs]


def all_hooks(api: Api, parent: str) -> list[hooks_pb2.Hook]:
    found: list[hooks_pb2.Hook] = []
    token = ""
    while True:
        page = api.hooks.ListHooks(hooks_pb2.ListHooksRequest(parent=parent, page_size=2, page_token=token))
        found += page.hooks
        token = page.next_page_token
        if not token:
            return found


def all_triggers(api: Api, hook: str) -> list[hooks_pb2.Trigger]:
    found: list[hooks_pb2.Trigger] = []
    token = ""
    while True:
        page = api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=hook, page_size=2, page_token=token))
        found += page.triggers
        token = page.next_page_token
        if not token:
            return found


def snapshot(api: Api) -> Snapshot:
    """Every hook under SNAPSHOT_PARENTS, all fields, with its triggers."""
    hooks = [hook for parent in SNAPSHOT_PARENTS for hook in all_hooks(api, parent)]
    return {hook.name: (hook, all_triggers(api, hook.name)) for hook in hooks}


def trigger_names(state: Snapshot, hook: str) -> list[str]:
    return [t.name for t in state[hook][1]]


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = tmp_path_factory.mktemp("bad-inputs") / "tidings.sqlite3"
    config = Config(
        listen="127.0.0.1:0",
        store_url=f"sqlite:///{store}",
        allow_http=True,
        allow_private_destinations=True,
        secrets_key=secrets_key(),
    )
    server = ServerThread(config).start()
    api = Api.connect(server.port)
    try:
        seed(api)
        yield api
    finally:
        api.channel.close()
        server.stop()


@pytest.fixture(scope="module")
def baseline(shared_api: Api) -> Snapshot:
    return snapshot(shared_api)


# -- requests ---------------------------------------------------------------------------------


def create_hook(
    parent: str = PROJECT,
    hook_id: str = "",
    *,
    display_name: str = "New hook",
    url: str = URL,
    auth: str = "",
    payload_format: str = "procore.v4",
    status: Status = hooks_pb2.HOOK_STATUS_UNSPECIFIED,
) -> Call:
    hook = hooks_pb2.Hook(
        display_name=display_name,
        destination_url=url,
        authorization_header=auth,
        payload_format=payload_format,
        status=status,
    )
    request = hooks_pb2.CreateHookRequest(parent=parent, hook_id=hook_id, hook=hook)
    return lambda api: api.hooks.CreateHook(request)


def create_with_url(url: str) -> Call:
    return create_hook(hook_id="url-case", url=url)


def create_with_auth(auth: str) -> Call:
    return create_hook(hook_id="auth-case", auth=auth)


def create_under(parent: str) -> Call:
    return create_hook(parent, "parent-case")


def get_hook(name: str) -> Call:
    request = hooks_pb2.GetHookRequest(name=name)
    return lambda api: api.hooks.GetHook(request)


def delete_hook(name: str) -> Call:
    request = hooks_pb2.DeleteHookRequest(name=name)
    return lambda api: api.hooks.DeleteHook(request)


def update_hook(
    paths: Sequence[str],
    name: str = RFI_HOOK,
    *,
    display_name: str = "",
    url: str = "",
    auth: str = "",
    payload_format: str = "",
    status: Status = hooks_pb2.HOOK_STATUS_UNSPECIFIED,
) -> Call:
    hook = hooks_pb2.Hook(
        name=name,
        display_name=display_name,
        destination_url=url,
        authorization_header=auth,
        payload_format=payload_format,
        status=status,
    )
    request = hooks_pb2.UpdateHookRequest(hook=hook, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
    return lambda api: api.hooks.UpdateHook(request)


def rotate(name: str = RFI_HOOK, overlap: duration_pb2.Duration | None = None) -> Call:
    request = hooks_pb2.RotateSigningSecretRequest(name=name, overlap=overlap)
    return lambda api: api.hooks.RotateSigningSecret(request)


def list_hooks(parent: str = PROJECT, *, page_size: int = 0, page_token: str = "", filter_text: str = "") -> Call:
    request = hooks_pb2.ListHooksRequest(parent=parent, page_size=page_size, page_token=page_token, filter=filter_text)
    return lambda api: api.hooks.ListHooks(request)


def hooks_token_reused(first: hooks_pb2.ListHooksRequest, second: hooks_pb2.ListHooksRequest) -> Call:
    """Take a real next_page_token from ``first`` and send it with ``second``."""

    def call(api: Api) -> object:
        token = api.hooks.ListHooks(first).next_page_token
        assert token, "the first request must have a second page"
        reused = hooks_pb2.ListHooksRequest()
        reused.CopyFrom(second)
        reused.page_token = token
        return api.hooks.ListHooks(reused)

    return call


def add_triggers(pairs: Sequence[tuple[str, str]], hook: str = RFI_HOOK) -> Call:
    request = hooks_pb2.BatchCreateTriggersRequest(parent=hook, triggers=triggers(pairs))
    return lambda api: api.hooks.BatchCreateTriggers(request)


def delete_triggers(names: Sequence[str], hook: str = RFI_HOOK, *, allow_missing: bool = False) -> Call:
    request = hooks_pb2.BatchDeleteTriggersRequest(parent=hook, names=list(names), allow_missing=allow_missing)
    return lambda api: api.hooks.BatchDeleteTriggers(request)


def list_triggers(hook: str = RFI_HOOK, *, page_size: int = 0, page_token: str = "") -> Call:
    request = hooks_pb2.ListTriggersRequest(parent=hook, page_size=page_size, page_token=page_token)
    return lambda api: api.hooks.ListTriggers(request)


def triggers_token_reused(first_hook: str, second_hook: str) -> Call:
    def call(api: Api) -> object:
        token = api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=first_hook, page_size=1)).next_page_token
        assert token, "the first hook must have a second page of triggers"
        return api.hooks.ListTriggers(hooks_pb2.ListTriggersRequest(parent=second_hook, page_token=token))

    return call


def list_resources(
    scope: catalog_pb2.Scope.ValueType = catalog_pb2.SCOPE_PROJECT,
    *,
    payload_format: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> Call:
    request = catalog_pb2.ListResourcesRequest(
        scope=scope, payload_format=payload_format, page_size=page_size, page_token=page_token
    )
    return lambda api: api.catalog.ListResources(request)


def resources_token_reused(first: catalog_pb2.ListResourcesRequest, second: catalog_pb2.ListResourcesRequest) -> Call:
    def call(api: Api) -> object:
        token = api.catalog.ListResources(first).next_page_token
        assert token, "the first request must have a second page"
        reused = catalog_pb2.ListResourcesRequest()
        reused.CopyFrom(second)
        reused.page_token = token
        return api.catalog.ListResources(reused)

    return call


def list_formats(*, page_size: int = 0, page_token: str = "") -> Call:
    request = catalog_pb2.ListPayloadFormatsRequest(page_size=page_size, page_token=page_token)
    return lambda api: api.catalog.ListPayloadFormats(request)


def formats_with_resources_token(api: Api) -> object:
    first = catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_COMPANY, page_size=1)
    token = api.catalog.ListResources(first).next_page_token
    assert token, "company resources must have a second page"
    return api.catalog.ListPayloadFormats(catalog_pb2.ListPayloadFormatsRequest(page_token=token))


def create_with_rate(per_second: float, burst: int) -> Call:
    hook = hooks_pb2.Hook(
        destination_url=URL,
        payload_format="procore.v4",
        rate_limit=hooks_pb2.RateLimit(per_second=per_second, burst=burst),
    )
    request = hooks_pb2.CreateHookRequest(parent=PROJECT, hook_id="rate-case", hook=hook)
    return lambda api: api.hooks.CreateHook(request)


def update_rate(per_second: float, burst: int) -> Call:
    hook = hooks_pb2.Hook(name=RFI_HOOK, rate_limit=hooks_pb2.RateLimit(per_second=per_second, burst=burst))
    request = hooks_pb2.UpdateHookRequest(hook=hook, update_mask=field_mask_pb2.FieldMask(paths=["rate_limit"]))
    return lambda api: api.hooks.UpdateHook(request)


# -- the table --------------------------------------------------------------------------------

LONG_URL = "https://hooks.example.com/" + "a" * (2049 - len("https://hooks.example.com/"))
TOO_MANY = 501
P = pytest.param

BAD_INPUTS = [
    # CreateHook: destination_url
    P(create_with_url(""), INVALID, "hook.destination_url: required", id="create-url-empty"),
    P(
        create_with_url("hooks.example.com/in"),
        INVALID,
        "must be an absolute http or https URL, got scheme 'none'",
        id="create-url-no-scheme",
    ),
    P(
        create_with_url("ftp://hooks.example.com/in"),
        INVALID,
        "hook.destination_url: must be an absolute http or https URL, got scheme 'ftp'",
        id="create-url-ftp",
    ),
    P(
        create_with_url("file:///etc/passwd"),
        INVALID,
        "hook.destination_url: must be an absolute http or https URL, got scheme 'file'",
        id="create-url-file",
    ),
    P(
        create_with_url("https:///in"),
        INVALID,
        "hook.destination_url: 'https:///in' has no host",
        id="create-url-no-host",
    ),
    P(
        create_with_url(LONG_URL),
        INVALID,
        "hook.destination_url: 2049 characters is longer than the 2048 allowed",
        id="create-url-2049-chars",
    ),
    P(
        create_with_url("https://hooks.example.com/a b"),
        INVALID,
        "hook.destination_url: must be ASCII without spaces or control characters",
        id="create-url-space",
    ),
    P(
        create_with_url("https://hooks.example.com/in\r\nX-Evil: 1"),
        INVALID,
        "hook.destination_url: must be ASCII without spaces or control characters",
        id="create-url-crlf",
    ),
    P(
        create_with_url("https://user:secret@hooks.example.com/in"),
        INVALID,
        "hook.destination_url: credentials in the URL are not allowed",
        id="create-url-credentials",
    ),
    P(
        create_with_url("https://hooks.example.com/in#top"),
        INVALID,
        "hook.destination_url: a fragment (#…) is never sent",
        id="create-url-fragment",
    ),
    P(
        create_with_url("https://hooks.example.com:0/in"),
        INVALID,
        "hook.destination_url: port 0 is not a valid destination port",
        id="create-url-port-0",
    ),
    P(
        create_with_url("https://hooks.example.com:70000/in"),
        INVALID,
        "hook.destination_url: 'https://hooks.example.com:70000/in' is not a valid URL: Port out of range",
        id="create-url-port-70000",
    ),
    P(
        create_with_url("https://[::1/in"),
        INVALID,
        "hook.destination_url: 'https://[::1/in' is not a valid URL: Invalid IPv6 URL",
        id="create-url-broken-ipv6",
    ),
    # CreateHook: authorization_header
    P(
        create_with_auth("Bearer " + "a" * 1018),
        INVALID,
        "hook.authorization_header: 1025 characters is longer than the 1024 allowed",
        id="create-auth-1025-chars",
    ),
    P(
        create_with_auth("Bearer tökén"),
        INVALID,
        "hook.authorization_header: character 9 is not printable ASCII",
        id="create-auth-non-ascii",
    ),
    P(
        create_with_auth("Bearer abc\r\nX-Injected: 1"),
        INVALID,
        "hook.authorization_header: character 11 is not printable ASCII",
        id="create-auth-crlf-injection",
    ),
    P(
        create_with_auth("Bearer abc\nX-Injected: 1"),
        INVALID,
        "hook.authorization_header: character 11 is not printable ASCII",
        id="create-auth-lf-injection",
    ),
    P(
        create_with_auth(" Bearer abc"),
        INVALID,
        "hook.authorization_header: must not start or end with whitespace",
        id="create-auth-leading-space",
    ),
    # CreateHook: other fields
    P(
        create_hook(display_name="x" * 201),
        INVALID,
        "hook.display_name: 201 characters is longer than the 200 allowed",
        id="create-display-name-201-chars",
    ),
    P(
        create_hook(display_name="RFI\nsync"),
        INVALID,
        "hook.display_name: must not contain control characters",
        id="create-display-name-newline",
    ),
    P(
        create_hook(payload_format="procore.v9"),
        INVALID,
        "hook.payload_format: unknown payload format 'procore.v9'",
        id="create-format-unknown",
    ),
    P(create_hook(payload_format=""), INVALID, "hook.payload_format: required", id="create-format-missing"),
    P(
        create_hook(status=Status(9)),
        INVALID,
        "hook.status: 9 is not a known hook status",
        id="create-status-unknown-number",
    ),
    # CreateHook: parent
    P(
        create_under("companies/abc"),
        INVALID,
        "parent: 'companies/abc' is not a valid parent",
        id="create-parent-non-numeric",
    ),
    P(
        create_under("companies/01"),
        INVALID,
        "parent: 'companies/01' is not a valid parent",
        id="create-parent-leading-zero",
    ),
    P(create_under("companies/0"), INVALID, "parent: 'companies/0' is not a valid parent", id="create-parent-zero"),
    P(
        create_under("companies/1/projects/"),
        INVALID,
        "parent: 'companies/1/projects/' is not a valid parent",
        id="create-parent-empty-project",
    ),
    P(create_under("projects/1"), INVALID, "parent: 'projects/1' is not a valid parent", id="create-parent-no-company"),
    P(
        create_under("companies/8/"),
        INVALID,
        "parent: 'companies/8/' is not a valid parent",
        id="create-parent-trailing-slash",
    ),
    P(create_under(""), INVALID, "parent: '' is not a valid parent", id="create-parent-empty"),
    P(
        create_under("companies/8/projects/-"),
        INVALID,
        "parent: the wildcard project '-' is only allowed when listing",
        id="create-parent-wildcard",
    ),
    P(
        create_under("companies/9223372036854775808"),
        INVALID,
        "parent: id 9223372036854775808 is larger than 9223372036854775807",
        id="create-parent-id-overflow",
    ),
    P(create_under(RFI_HOOK), INVALID, f"parent: '{RFI_HOOK}' is not a valid parent", id="create-parent-is-a-hook"),
    # CreateHook: hook_id
    P(create_hook(hook_id="RFI-Sync"), INVALID, "hook_id: 'RFI-Sync' is not a valid hook id", id="create-id-uppercase"),
    P(create_hook(hook_id="a" * 64), INVALID, f"hook_id: '{'a' * 64}' is not a valid hook id", id="create-id-64-chars"),
    P(create_hook(hook_id="-sync"), INVALID, "hook_id: '-sync' is not a valid hook id", id="create-id-leading-hyphen"),
    P(create_hook(hook_id="sync-"), INVALID, "hook_id: 'sync-' is not a valid hook id", id="create-id-trailing-hyphen"),
    P(
        create_hook(hook_id="rfi_sync"),
        INVALID,
        "hook_id: 'rfi_sync' is not a valid hook id",
        id="create-id-underscore",
    ),
    P(
        create_hook(hook_id="rfi-sync"),
        grpc.StatusCode.ALREADY_EXISTS,
        f"hook {RFI_HOOK} already exists",
        id="create-id-taken",
    ),
    # GetHook / DeleteHook
    P(get_hook(MISSING_HOOK), NOT_FOUND, f"hook {MISSING_HOOK} does not exist", id="get-missing"),
    P(
        get_hook("companies/8/hooks/ERP-SYNC"),
        INVALID,
        "name: 'companies/8/hooks/ERP-SYNC' is not a valid hook name",
        id="get-name-uppercase",
    ),
    P(
        get_hook(f"{COMPANY_HOOK}/"),
        INVALID,
        f"name: '{COMPANY_HOOK}/' is not a valid hook name",
        id="get-name-trailing-slash",
    ),
    P(
        get_hook(f"{RFI_HOOK}/triggers/rfis.create"),
        INVALID,
        f"name: '{RFI_HOOK}/triggers/rfis.create' is not a valid hook name",
        id="get-name-is-a-trigger",
    ),
    P(delete_hook(MISSING_HOOK), NOT_FOUND, f"hook {MISSING_HOOK} does not exist", id="delete-missing"),
    P(
        delete_hook("companies/8/projects/-/hooks/rfi-sync"),
        INVALID,
        "name: 'companies/8/projects/-/hooks/rfi-sync' is not a valid hook name",
        id="delete-name-wildcard",
    ),
    P(delete_hook(PROJECT), INVALID, f"name: '{PROJECT}' is not a valid hook name", id="delete-name-is-a-parent"),
    # RotateSigningSecret
    P(
        rotate(overlap=duration_pb2.Duration(seconds=7 * 86400 + 1)),
        INVALID,
        "overlap: 604801 s is outside 0 to 7 days",
        id="rotate-overlap-too-long",
    ),
    P(
        rotate(overlap=duration_pb2.Duration(seconds=-1)),
        INVALID,
        "overlap: must not be negative",
        id="rotate-negative",
    ),
    P(
        rotate(overlap=duration_pb2.Duration(nanos=-5)),
        INVALID,
        "overlap: must not be negative",
        id="rotate-negative-nanos",
    ),
    P(rotate(MISSING_HOOK), NOT_FOUND, f"hook {MISSING_HOOK} does not exist", id="rotate-missing"),
    P(
        rotate(MISSING_HOOK, duration_pb2.Duration(seconds=8 * 86400)),
        INVALID,
        "overlap: 8 days is outside 0 to 7 days",
        id="rotate-missing-and-bad-overlap",
    ),
    P(rotate(""), INVALID, "name: '' is not a valid hook name", id="rotate-name-empty"),
    P(rotate(PROJECT), INVALID, f"name: '{PROJECT}' is not a valid hook name", id="rotate-name-is-a-parent"),
    P(
        rotate(f"{RFI_HOOK}/triggers/rfis.create"),
        INVALID,
        f"name: '{RFI_HOOK}/triggers/rfis.create' is not a valid hook name",
        id="rotate-name-is-a-trigger",
    ),
    # UpdateHook
    P(
        update_hook(["payload_format"], payload_format="procore.v2"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "hook.payload_format cannot be changed after creation",
        id="update-mask-payload-format",
    ),
    P(
        update_hook(["display_name", "payload_format"], display_name="x", payload_format="procore.v2"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "hook.payload_format cannot be changed",
        id="update-mask-with-payload-format",
    ),
    P(update_hook(["create_time"]), INVALID, "update_mask: 'create_time' is output only", id="update-mask-create-time"),
    P(update_hook(["name"], display_name="x"), INVALID, "update_mask: 'name' is output only", id="update-mask-name"),
    P(
        update_hook(["display_name", "url"], display_name="x"),
        INVALID,
        "update_mask: unknown field 'url'",
        id="update-mask-unknown-path",
    ),
    P(update_hook([], display_name="x"), INVALID, "update_mask: required", id="update-mask-empty"),
    P(
        update_hook(["signing_secret"]),
        INVALID,
        "update_mask: 'signing_secret' is output only",
        id="update-mask-signing-secret",
    ),
    P(
        update_hook(["previous_secret_expire_time"]),
        INVALID,
        "update_mask: 'previous_secret_expire_time' is output only",
        id="update-mask-previous-secret-expire-time",
    ),
    P(
        update_hook(["status"]),
        INVALID,
        "hook.status: must be ACTIVE, PAUSED or DISABLED when update_mask names it",
        id="update-status-unspecified",
    ),
    P(
        update_hook(["display_name"], display_name="x" * 201),
        INVALID,
        "hook.display_name: 201 characters is longer than the 200 allowed",
        id="update-display-name-201-chars",
    ),
    P(
        update_hook(["destination_url"], url="ftp://hooks.example.com/in"),
        INVALID,
        "hook.destination_url: must be an absolute http or https URL, got scheme 'ftp'",
        id="update-url-ftp",
    ),
    P(update_hook(["destination_url"]), INVALID, "hook.destination_url: required", id="update-url-empty"),
    P(
        update_hook(["authorization_header"], auth="Bearer abc\r\nX-Injected: 1"),
        INVALID,
        "hook.authorization_header: character 11 is not printable ASCII",
        id="update-auth-crlf-injection",
    ),
    P(
        update_hook(["display_name"], MISSING_HOOK, display_name="x"),
        NOT_FOUND,
        f"hook {MISSING_HOOK} does not exist",
        id="update-missing",
    ),
    P(
        update_hook(["display_name"], "", display_name="x"),
        INVALID,
        "hook.name: '' is not a valid hook name",
        id="update-name-empty",
    ),
    # ListHooks
    P(list_hooks(page_size=-1), INVALID, "page_size: must not be negative, got -1", id="list-hooks-negative-size"),
    P(
        list_hooks(page_token="not-a-token"),
        INVALID,
        "page_token: not a token this server issued",
        id="list-hooks-garbage-token",
    ),
    P(
        hooks_token_reused(
            hooks_pb2.ListHooksRequest(parent=PROJECT, page_size=1, filter="status != DISABLED"),
            hooks_pb2.ListHooksRequest(parent=PROJECT, page_size=1, filter="status = ACTIVE"),
        ),
        INVALID,
        "page_token: issued for a different request",
        id="list-hooks-token-other-filter",
    ),
    P(
        hooks_token_reused(
            hooks_pb2.ListHooksRequest(parent=PROJECT, page_size=1),
            hooks_pb2.ListHooksRequest(parent=f"{COMPANY}/projects/-", page_size=1),
        ),
        INVALID,
        "page_token: issued for a different request",
        id="list-hooks-token-other-parent",
    ),
    P(
        list_hooks(filter_text="display_name = x"),
        INVALID,
        "filter: at position 1: unknown field 'display_name'",
        id="filter-unknown-field",
    ),
    P(
        list_hooks(filter_text="status = RUNNING"),
        INVALID,
        "filter: at position 10: 'RUNNING' is not a valid status",
        id="filter-bad-status",
    ),
    P(
        list_hooks(filter_text="status = ACTIVE AND"),
        INVALID,
        "filter: at position 20: expected a comparison after 'AND'",
        id="filter-dangling-and",
    ),
    P(
        list_hooks(filter_text="(status = ACTIVE"),
        INVALID,
        "filter: at position 1: unbalanced parenthesis",
        id="filter-unclosed-parenthesis",
    ),
    P(
        list_hooks(filter_text="status = ACTIVE)"),
        INVALID,
        "filter: at position 16: unbalanced parenthesis",
        id="filter-extra-parenthesis",
    ),
    P(
        list_hooks(filter_text='payload_format = "procore.v4" and status = ACTIVE'),
        INVALID,
        "filter: at position 31: expected AND, OR or the end of the filter,"
        " found 'and' (AND, OR and NOT must be upper case)",
        id="filter-lowercase-and",
    ),
    P(list_hooks("companies/-"), INVALID, "parent: 'companies/-' is not a valid parent", id="list-hooks-bad-parent"),
    # BatchCreateTriggers
    P(
        add_triggers([("Submittals", "create")] * TOO_MANY),
        INVALID,
        "triggers: 501 is more than the 500 allowed per call",
        id="add-triggers-501",
    ),
    P(add_triggers([]), INVALID, "triggers: at least one is required", id="add-triggers-none"),
    P(
        add_triggers([("RFIs", "delete"), ("Widgets", "create")]),
        INVALID,
        "triggers[1] ('Widgets', 'create'): unknown resource 'Widgets' for project hooks",
        id="add-unknown-resource",
    ),
    P(
        add_triggers([("rfis", "delete")]),
        INVALID,
        "triggers[0] ('rfis', 'delete'): unknown resource 'rfis' for project hooks",
        id="add-resource-wrong-case",
    ),
    P(
        add_triggers([("Projects", "create")]),
        INVALID,
        "triggers[0] ('Projects', 'create'): 'Projects' is a company-level resource; project hooks cannot select it",
        id="add-company-resource-to-project-hook",
    ),
    P(
        add_triggers([("Widgets", "create")], COMPANY_HOOK),
        INVALID,
        "triggers[0] ('Widgets', 'create'): unknown resource 'Widgets' for company hooks",
        id="add-unknown-resource-to-company-hook",
    ),
    P(
        add_triggers([("Bids", "delete")], COMPANY_HOOK),
        INVALID,
        "triggers[0] ('Bids', 'delete'): 'Bids' does not support event type 'delete'; supported: update",
        id="add-unsupported-event-type",
    ),
    P(
        add_triggers([("RFIs", "archive")]),
        INVALID,
        "triggers[0] ('RFIs', 'archive'): 'RFIs' does not support event type 'archive';"
        " supported: create, delete, update",
        id="add-unknown-event-type",
    ),
    P(add_triggers([("", "create")]), INVALID, "triggers[0].resource_name: required", id="add-empty-resource-name"),
    P(
        add_triggers([("RFIs", "delete"), ("RFIs", "")]),
        INVALID,
        "triggers[1].event_type: required",
        id="add-empty-event-type",
    ),
    P(
        add_triggers([("RFIs", "delete")], MISSING_HOOK),
        NOT_FOUND,
        f"hook {MISSING_HOOK} does not exist",
        id="add-to-missing-hook",
    ),
    P(
        add_triggers([("RFIs", "delete")], PROJECT),
        INVALID,
        f"parent: '{PROJECT}' is not a valid hook name",
        id="add-parent-not-a-hook",
    ),
    # BatchDeleteTriggers
    P(
        delete_triggers([f"{SUBMITTAL_HOOK}/triggers/submittals.create"]),
        INVALID,
        f"names[0]: '{SUBMITTAL_HOOK}/triggers/submittals.create' is not a trigger of {RFI_HOOK}",
        id="delete-triggers-foreign",
    ),
    P(
        delete_triggers([f"{RFI_HOOK}/triggers/rfis.create", f"{COMPANY_HOOK}/triggers/bids.update"]),
        INVALID,
        f"names[1]: '{COMPANY_HOOK}/triggers/bids.update' is not a trigger of {RFI_HOOK}",
        id="delete-triggers-foreign-second",
    ),
    P(
        delete_triggers([f"{RFI_HOOK}-2/triggers/rfis.create"]),
        INVALID,
        f"names[0]: '{RFI_HOOK}-2/triggers/rfis.create' is not a trigger of {RFI_HOOK}",
        id="delete-triggers-prefix-lookalike",
    ),
    P(
        delete_triggers([f"{RFI_HOOK}/triggers/RFIs.create"]),
        INVALID,
        f"names[0]: '{RFI_HOOK}/triggers/RFIs.create' is not a valid trigger name",
        id="delete-triggers-malformed",
    ),
    P(
        delete_triggers([f"{RFI_HOOK}/triggers/rfis.delete"]),
        NOT_FOUND,
        f"trigger {RFI_HOOK}/triggers/rfis.delete does not exist",
        id="delete-triggers-missing",
    ),
    P(delete_triggers([]), INVALID, "names: at least one is required", id="delete-triggers-none"),
    P(
        delete_triggers([f"{RFI_HOOK}/triggers/rfis.create"] * TOO_MANY),
        INVALID,
        "names: 501 is more than the 500 allowed per call",
        id="delete-triggers-501",
    ),
    P(
        delete_triggers([f"{MISSING_HOOK}/triggers/rfis.create"], MISSING_HOOK, allow_missing=True),
        NOT_FOUND,
        f"hook {MISSING_HOOK} does not exist",
        id="delete-triggers-missing-hook",
    ),
    # ListTriggers
    P(list_triggers(MISSING_HOOK), NOT_FOUND, f"hook {MISSING_HOOK} does not exist", id="list-triggers-missing-hook"),
    P(
        list_triggers(page_size=-5),
        INVALID,
        "page_size: must not be negative, got -5",
        id="list-triggers-negative-size",
    ),
    P(
        list_triggers(page_token="%%%"),
        INVALID,
        "page_token: not a token this server issued",
        id="list-triggers-garbage-token",
    ),
    P(
        triggers_token_reused(RFI_HOOK, COMPANY_HOOK),
        INVALID,
        "page_token: issued for a different request",
        id="list-triggers-token-other-hook",
    ),
    P(
        list_triggers(f"{RFI_HOOK}/triggers"),
        INVALID,
        f"parent: '{RFI_HOOK}/triggers' is not a valid hook name",
        id="list-triggers-bad-parent",
    ),
    # CatalogService
    P(list_resources(catalog_pb2.SCOPE_UNSPECIFIED), INVALID, "scope: required", id="resources-scope-unset"),
    P(
        list_resources(catalog_pb2.Scope.ValueType(7)),
        INVALID,
        "scope: 7 is not a known scope",
        id="resources-scope-unknown",
    ),
    P(
        list_resources(payload_format="procore.v9"),
        INVALID,
        "payload_format: unknown payload format 'procore.v9'",
        id="resources-format-unknown",
    ),
    P(list_resources(page_size=-1), INVALID, "page_size: must not be negative, got -1", id="resources-negative-size"),
    P(
        list_resources(page_token="garbage"),
        INVALID,
        "page_token: not a token this server issued",
        id="resources-garbage-token",
    ),
    P(
        resources_token_reused(
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=5),
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_COMPANY, page_size=5),
        ),
        INVALID,
        "page_token: issued for a different request",
        id="resources-token-other-scope",
    ),
    P(
        resources_token_reused(
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=5),
            catalog_pb2.ListResourcesRequest(scope=catalog_pb2.SCOPE_PROJECT, page_size=5, payload_format="procore.v3"),
        ),
        INVALID,
        "page_token: issued for a different request",
        id="resources-token-other-format",
    ),
    P(list_formats(page_size=-2), INVALID, "page_size: must not be negative, got -2", id="formats-negative-size"),
    P(
        list_formats(page_token="garbage"),
        INVALID,
        "page_token: not a token this server issued",
        id="formats-garbage-token",
    ),
    P(
        formats_with_resources_token,
        INVALID,
        "page_token: issued for a different request",
        id="formats-token-from-resources",
    ),
    # Rate limits, on create and update
    P(
        create_with_rate(-1.0, 1),
        INVALID,
        "hook.rate_limit.per_second: -1 is outside 0 (no limit) to 10000",
        id="create-rate-negative",
    ),
    P(
        create_with_rate(float("nan"), 1),
        INVALID,
        "hook.rate_limit.per_second: nan is outside 0 (no limit) to 10000",
        id="create-rate-nan",
    ),
    P(
        update_rate(20_000.0, 1),
        INVALID,
        "hook.rate_limit.per_second: 20000 is outside 0 (no limit) to 10000",
        id="update-rate-too-high",
    ),
    P(update_rate(5.0, 10_001), INVALID, "hook.rate_limit.burst: 10001 is outside 1 to 10000", id="update-burst-high"),
    P(update_rate(5.0, -2), INVALID, "hook.rate_limit.burst: -2 is outside 1 to 10000", id="update-burst-negative"),
    P(
        update_hook(["disabled_reason"]),
        INVALID,
        "update_mask: 'disabled_reason' is output only",
        id="update-disabled-reason",
    ),
]


def test_seeded_state(baseline: Snapshot) -> None:
    """The baseline the table compares with holds what seed() made, so an empty snapshot cannot pass."""
    assert sorted(baseline) == sorted(SEEDED_TRIGGERS)
    for hook, pairs in SEEDED_TRIGGERS.items():
        assert sorted((t.resource_name, t.event_type) for t in baseline[hook][1]) == sorted(pairs)
    assert baseline[SUBMITTAL_HOOK][0].status == hooks_pb2.HOOK_STATUS_PAUSED
    assert len(BAD_INPUTS) >= 35


@pytest.mark.parametrize(("call", "code", "fragment"), BAD_INPUTS)
def test_bad_input_is_refused_and_changes_nothing(
    shared_api: Api, baseline: Snapshot, call: Call, code: grpc.StatusCode, fragment: str
) -> None:
    assert snapshot(shared_api) == baseline, "an earlier case changed the stored state"
    with pytest.raises(grpc.RpcError) as err:
        call(shared_api)
    details = err.value.details() or ""
    assert (err.value.code(), fragment in details) == (code, True), details
    assert snapshot(shared_api) == baseline


# -- atomicity: each test changes state after the refusal, so each has a server of its own -----


def test_batch_create_with_one_bad_pair_stores_none(api: Api) -> None:
    seed(api)
    before = snapshot(api)
    good = [("RFIs", "delete"), ("Submittals", "update"), ("Punch Items", "create"), ("Meetings", "update")]
    batch = [*good[:2], ("Projects", "create"), *good[2:]]
    with pytest.raises(grpc.RpcError) as err:
        add_triggers(batch)(api)
    assert err.value.code() == INVALID
    assert "triggers[2] ('Projects', 'create')" in (err.value.details() or "")
    assert snapshot(api) == before
    # The rest of the batch alone is accepted: the one bad pair was all that stopped it.
    add_triggers(good)(api)
    added = {
        f"{RFI_HOOK}/triggers/{t}"
        for t in ("rfis.delete", "submittals.update", "punch-items.create", "meetings.update")
    }
    assert set(trigger_names(snapshot(api), RFI_HOOK)) == set(trigger_names(before, RFI_HOOK)) | added


def test_batch_delete_with_one_missing_name_deletes_none(api: Api) -> None:
    seed(api)
    before = snapshot(api)
    present = [f"{RFI_HOOK}/triggers/rfis.create", f"{RFI_HOOK}/triggers/rfi-replies.delete"]
    missing = f"{RFI_HOOK}/triggers/rfis.delete"
    with pytest.raises(grpc.RpcError) as err:
        delete_triggers([present[0], missing, present[1]])(api)
    assert err.value.code() == NOT_FOUND
    assert f"trigger {missing} does not exist" in (err.value.details() or "")
    assert snapshot(api) == before
    delete_triggers(present)(api)
    assert trigger_names(snapshot(api), RFI_HOOK) == [f"{RFI_HOOK}/triggers/rfis.update"]


def test_batch_delete_with_one_foreign_name_deletes_none(api: Api) -> None:
    seed(api)
    before = snapshot(api)
    own = [f"{RFI_HOOK}/triggers/rfis.create", f"{RFI_HOOK}/triggers/rfis.update"]
    foreign = f"{SUBMITTAL_HOOK}/triggers/submittals.create"
    with pytest.raises(grpc.RpcError) as err:
        delete_triggers([own[0], foreign, own[1]], allow_missing=True)(api)
    assert err.value.code() == INVALID
    assert f"names[1]: '{foreign}' is not a trigger of {RFI_HOOK}" in (err.value.details() or "")
    assert snapshot(api) == before
    delete_triggers(own, allow_missing=True)(api)
    after = snapshot(api)
    assert trigger_names(after, RFI_HOOK) == [f"{RFI_HOOK}/triggers/rfi-replies.delete"]
    assert trigger_names(after, SUBMITTAL_HOOK) == [foreign]


def test_update_with_valid_name_and_bad_url_changes_nothing(api: Api) -> None:
    seed(api)
    before = snapshot(api)
    paths = ["display_name", "destination_url"]
    with pytest.raises(grpc.RpcError) as err:
        update_hook(paths, display_name="Renamed", url="https://hooks.example.com/in#frag")(api)
    assert err.value.code() == INVALID
    assert "hook.destination_url: a fragment" in (err.value.details() or "")
    assert snapshot(api) == before
    update_hook(paths, display_name="Renamed", url="https://hooks.example.com/in")(api)
    hook = api.hooks.GetHook(hooks_pb2.GetHookRequest(name=RFI_HOOK))
    assert (hook.display_name, hook.destination_url) == ("Renamed", "https://hooks.example.com/in")
