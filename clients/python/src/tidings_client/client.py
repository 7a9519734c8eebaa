# Generated from aio.py by .ci/unasync.py (`make unasync`): edit aio.py, not this file.
"""The blocking client: one method per RPC, plain values in and out, errors as TidingsError."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from tidings.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    deliveries_pb2,
    deliveries_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    hooks_pb2,
    hooks_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from tidings_client import convert, publishing
from tidings_client import types as t
from tidings_client.errors import TidingsError, from_rpc_error
from tidings_client.options import (
    HEALTHY_STREAM_SECONDS,
    Options,
    Tls,
    dropped_at,
    resumable,
    retryable,
    started_at,
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Item = TypeVar("Item")


class Client:
    """A connection to one tidings server.

    >>> with Client("127.0.0.1:50051") as client:
    ...     for hook in client.list_hooks("companies/8/projects/6778"):
    ...         print(hook.name)

    Methods that read, and writes that are safe to repeat, retry UNAVAILABLE with backoff
    (``Options.retry``); the others raise ``Unavailable`` at once, since repeating them could
    do their work twice. ``timeout`` on a method overrides ``Options.timeout`` for that call.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        options: Options | None = None,
        token: str | None = None,
        tls: Tls | None = None,
        timeout: float | None = None,
    ) -> None:
        opts = options or Options()
        changes: dict[str, Any] = {}
        if target is not None:
            changes["target"] = target
        if token is not None:
            changes["token"] = token
        if tls is not None:
            changes["tls"] = tls
        if timeout is not None:
            changes["timeout"] = timeout
        self.options = dataclasses.replace(opts, **changes)
        if self.options.tls is not None:
            self._channel = grpc.secure_channel(
                self.options.target, self.options.tls.credentials(), self.options.grpc_options()
            )
        else:
            self._channel = grpc.insecure_channel(self.options.target, self.options.grpc_options())
        self._metadata = self.options.metadata()
        self._hooks = hooks_pb2_grpc.HookServiceStub(self._channel)
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(self._channel)
        self._events = events_pb2_grpc.EventServiceStub(self._channel)
        self._deliveries = deliveries_pb2_grpc.DeliveryServiceStub(self._channel)
        self._tokens = tokens_pb2_grpc.TokenServiceStub(self._channel)
        self._templates = templates_pb2_grpc.TemplateServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None,
    ) -> Resp:
        deadline = self.options.timeout if timeout is None else timeout
        delays = self.options.retry.delays() if idempotent else iter(())
        while True:
            try:
                return method(request, timeout=deadline, metadata=self._metadata)
            except grpc.RpcError as exc:
                delay = next(delays, None) if retryable(exc.code()) else None
                if delay is None:
                    raise from_rpc_error(exc) from None
            time.sleep(delay)

    def _paged(
        self,
        fetch: Callable[[str], Resp],
        items: Callable[[Resp], Iterable[Item]],
        next_token: Callable[[Resp], str],
    ) -> Iterator[Item]:
        token = ""
        while True:
            page = fetch(token)
            yield from items(page)
            token = next_token(page)
            if not token:
                return

    # -- hooks ------------------------------------------------------------------------------------

    def create_hook(
        self,
        parent: str,
        destination_url: str,
        payload_format: str,
        *,
        display_name: str = "",
        authorization_header: str = "",
        hook_id: str = "",
        status: t.HookStatus | None = None,
        retry_policy: t.RetryPolicy | None = None,
        ordering: t.DeliveryOrdering | None = None,
        max_concurrency: int | None = None,
        signing_disabled: bool = False,
        rate_limit: t.RateLimit | None = None,
        projects: Sequence[int] = (),
        timeout: float | None = None,
    ) -> t.Hook:
        """Create a hook under ``companies/{c}`` or ``companies/{c}/projects/{p}``.

        The returned hook carries its signing secret in ``signing_secret``: this is the only
        answer that does (besides a rotation), so keep it. ``signing_disabled=True`` creates
        a hook whose deliveries carry no signature headers. ``rate_limit`` caps the
        deliveries a second (over it they wait, never fail). ``projects`` (company hooks only)
        narrows the project-level events it receives to those projects.
        """
        request = convert.create_hook_request(
            parent,
            destination_url,
            payload_format,
            display_name=display_name,
            authorization_header=authorization_header,
            hook_id=hook_id,
            status=status,
            retry_policy=retry_policy,
            ordering=ordering,
            max_concurrency=max_concurrency,
            signing_disabled=signing_disabled,
            rate_limit=rate_limit,
            projects=projects,
        )
        # Not retried: a lost answer to a create that happened would create a second hook.
        return convert.hook(self._call(self._hooks.CreateHook, request, idempotent=False, timeout=timeout))

    def get_hook(self, name: str, *, timeout: float | None = None) -> t.Hook:
        request = hooks_pb2.GetHookRequest(name=name)
        return convert.hook(self._call(self._hooks.GetHook, request, idempotent=True, timeout=timeout))

    def list_hooks(
        self, parent: str, *, filter: str = "", page_size: int = 0, timeout: float | None = None
    ) -> Iterator[t.Hook]:
        """Every hook under ``parent`` (``companies/{c}/projects/-`` for all projects), page by page."""

        def fetch(token: str) -> hooks_pb2.ListHooksResponse:
            request = hooks_pb2.ListHooksRequest(parent=parent, filter=filter, page_size=page_size, page_token=token)
            return self._call(self._hooks.ListHooks, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.hook, r.hooks), lambda r: r.next_page_token)

    def update_hook(self, name: str, changes: t.HookChanges, *, timeout: float | None = None) -> t.Hook:
        """Change the fields set in ``changes``; the payload format never changes."""
        request = convert.update_hook_request(name, changes)
        # Setting fields to given values is safe to repeat.
        return convert.hook(self._call(self._hooks.UpdateHook, request, idempotent=True, timeout=timeout))

    def delete_hook(self, name: str, *, timeout: float | None = None) -> None:
        # Not retried: a repeat after a lost answer would report NOT_FOUND for a delete that worked.
        self._call(self._hooks.DeleteHook, hooks_pb2.DeleteHookRequest(name=name), idempotent=False, timeout=timeout)

    def rotate_signing_secret(
        self, name: str, overlap: timedelta | None = None, *, timeout: float | None = None
    ) -> t.Hook:
        """Give the hook a new signing secret, returned in ``signing_secret`` (the only time it is).

        For ``overlap`` (24 h when None; 0 to 7 days) deliveries are signed with the previous
        secret as well, until ``previous_secret_expire_time``, so receivers can switch to the
        new secret without rejecting a delivery. A hook with signing off stays off: the new
        secret is what ``HookChanges(signing_disabled=False)`` will then sign with.
        """
        request = convert.rotate_signing_secret_request(name, overlap)
        # Not retried: a repeat after a lost answer would replace the secret that answer carried,
        # leaving the caller with no copy of the secret deliveries are signed with.
        return convert.hook(self._call(self._hooks.RotateSigningSecret, request, idempotent=False, timeout=timeout))

    def create_triggers(
        self, hook: str, pairs: Iterable[tuple[str, str]], *, timeout: float | None = None
    ) -> list[t.Trigger]:
        """Select (resource name, event type) pairs, up to 500, all or none; existing ones are kept."""
        request = hooks_pb2.BatchCreateTriggersRequest(parent=hook, triggers=convert.trigger_messages(pairs))
        response = self._call(self._hooks.BatchCreateTriggers, request, idempotent=True, timeout=timeout)
        return [convert.trigger(m) for m in response.triggers]

    def delete_triggers(
        self, hook: str, names: Iterable[str], *, allow_missing: bool = False, timeout: float | None = None
    ) -> None:
        """Remove triggers by name, up to 500, all or none."""
        request = hooks_pb2.BatchDeleteTriggersRequest(parent=hook, names=list(names), allow_missing=allow_missing)
        # Only repeatable when a trigger already gone is not an error.
        self._call(self._hooks.BatchDeleteTriggers, request, idempotent=allow_missing, timeout=timeout)

    def list_triggers(self, hook: str, *, page_size: int = 0, timeout: float | None = None) -> Iterator[t.Trigger]:
        def fetch(token: str) -> hooks_pb2.ListTriggersResponse:
            request = hooks_pb2.ListTriggersRequest(parent=hook, page_size=page_size, page_token=token)
            return self._call(self._hooks.ListTriggers, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.trigger, r.triggers), lambda r: r.next_page_token)

    # -- tokens (an owner of scope all) -----------------------------------------------------------

    def create_token(
        self,
        display_name: str,
        role: t.Role,
        *,
        scope: str = "all",
        client_cert_name: str = "",
        timeout: float | None = None,
    ) -> t.Token:
        """Create a bearer token; its ``secret`` is in the answer, and never again anywhere. With
        ``client_cert_name``, a principal bound to mutual-TLS client certificates whose common
        name or a SAN is that name instead: it has no secret."""
        request = tokens_pb2.CreateTokenRequest(
            token=tokens_pb2.Token(
                display_name=display_name, role=convert.ROLE[role], scope=scope, client_cert_name=client_cert_name
            )
        )
        # Not retried: a repeat after a lost answer would mint a second token.
        return convert.token(self._call(self._tokens.CreateToken, request, idempotent=False, timeout=timeout))

    def get_token(self, name: str, *, timeout: float | None = None) -> t.Token:
        request = tokens_pb2.GetTokenRequest(name=name)
        return convert.token(self._call(self._tokens.GetToken, request, idempotent=True, timeout=timeout))

    def list_tokens(self, *, page_size: int = 0, timeout: float | None = None) -> Iterator[t.Token]:
        """Every token, revoked ones too, by id (never their secrets)."""

        def fetch(page: str) -> tokens_pb2.ListTokensResponse:
            request = tokens_pb2.ListTokensRequest(page_size=page_size, page_token=page)
            return self._call(self._tokens.ListTokens, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.token, r.tokens), lambda r: r.next_page_token)

    def revoke_token(self, name: str, *, timeout: float | None = None) -> t.Token:
        """Revoke a token: calls with it are refused from the next one on. Repeating is harmless."""
        request = tokens_pb2.RevokeTokenRequest(name=name)
        return convert.token(self._call(self._tokens.RevokeToken, request, idempotent=True, timeout=timeout))

    # -- templates --------------------------------------------------------------------------------

    def create_template(
        self,
        parent: str,
        template_id: str,
        hooks: Sequence[t.HookDefinition],
        *,
        display_name: str = "",
        timeout: float | None = None,
    ) -> t.Template:
        """Create a project template under ``companies/{c}``: the hooks each project it is
        applied to gets (see ``apply_template``)."""
        message = templates_pb2.Template(
            display_name=display_name, hooks=[convert.definition_message(d) for d in hooks]
        )
        request = templates_pb2.CreateTemplateRequest(parent=parent, template_id=template_id, template=message)
        # Not retried: a repeat after a lost answer would report ALREADY_EXISTS for a create that worked.
        return convert.template(self._call(self._templates.CreateTemplate, request, idempotent=False, timeout=timeout))

    def get_template(self, name: str, *, timeout: float | None = None) -> t.Template:
        request = templates_pb2.GetTemplateRequest(name=name)
        return convert.template(self._call(self._templates.GetTemplate, request, idempotent=True, timeout=timeout))

    def list_templates(self, parent: str, *, page_size: int = 0, timeout: float | None = None) -> Iterator[t.Template]:
        """Every template of the company ``parent`` (``companies/{c}``), page by page."""

        def fetch(token: str) -> templates_pb2.ListTemplatesResponse:
            request = templates_pb2.ListTemplatesRequest(parent=parent, page_size=page_size, page_token=token)
            return self._call(self._templates.ListTemplates, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.template, r.templates), lambda r: r.next_page_token)

    def update_template(
        self,
        name: str,
        *,
        display_name: str | None = None,
        hooks: Sequence[t.HookDefinition] | None = None,
        timeout: float | None = None,
    ) -> t.Template:
        """Change the label or replace the hook definitions; the revision goes up by one.
        Hooks already made from the template are not changed."""
        message = templates_pb2.Template(name=name)
        paths = []
        if display_name is not None:
            message.display_name = display_name
            paths.append("display_name")
        if hooks is not None:
            message.hooks.extend(convert.definition_message(d) for d in hooks)
            paths.append("hooks")
        if not paths:
            raise ValueError("nothing to update: give display_name or hooks")
        request = templates_pb2.UpdateTemplateRequest(template=message, update_mask=FieldMask(paths=paths))
        # Not retried: each update raises the revision, so a repeat is not the same update.
        return convert.template(self._call(self._templates.UpdateTemplate, request, idempotent=False, timeout=timeout))

    def delete_template(self, name: str, *, timeout: float | None = None) -> None:
        # Not retried: a repeat after a lost answer would report NOT_FOUND for a delete that worked.
        request = templates_pb2.DeleteTemplateRequest(name=name)
        self._call(self._templates.DeleteTemplate, request, idempotent=False, timeout=timeout)

    def apply_template(self, template: str, project: str, *, timeout: float | None = None) -> t.AppliedTemplate:
        """Make the project's hooks from the template, all or none; the new hooks carry their
        signing secrets, shown this once. Applying again creates nothing (``already_applied``),
        so this is retried like a read: after a lost answer the retry reports the hooks as
        existing, and their secrets are had with ``rotate_signing_secret``."""
        request = templates_pb2.ApplyTemplateRequest(template=template, project=project)
        return convert.applied_template(
            self._call(self._templates.ApplyTemplate, request, idempotent=True, timeout=timeout)
        )

    # -- catalog ----------------------------------------------------------------------------------

    def list_resources(
        self, scope: t.Scope, *, payload_format: str = "", page_size: int = 0, timeout: float | None = None
    ) -> Iterator[t.CatalogResource]:
        def fetch(token: str) -> catalog_pb2.ListResourcesResponse:
            request = catalog_pb2.ListResourcesRequest(
                scope=convert.SCOPE[scope],
                payload_format=payload_format,
                page_size=page_size,
                page_token=token,
            )
            return self._call(self._catalog.ListResources, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.catalog_resource, r.resources), lambda r: r.next_page_token)

    def list_payload_formats(self, *, page_size: int = 0, timeout: float | None = None) -> Iterator[t.PayloadFormat]:
        def fetch(token: str) -> catalog_pb2.ListPayloadFormatsResponse:
            request = catalog_pb2.ListPayloadFormatsRequest(page_size=page_size, page_token=token)
            return self._call(self._catalog.ListPayloadFormats, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.payload_format, r.payload_formats), lambda r: r.next_page_token)

    # -- events -----------------------------------------------------------------------------------

    def publish_events(self, events: Sequence[t.Event], *, timeout: float | None = None) -> list[t.PublishedEvent]:
        """One PublishEvents call (1 to 1000 events, all or none).

        Retried on UNAVAILABLE only when every event has an idempotency key, because only then
        does a repeat not publish twice. ``publish()`` supplies keys and batches for you.
        """
        request = events_pb2.PublishEventsRequest(events=[convert.event_message(e) for e in events])
        safe = all(e.idempotency_key for e in events)
        response = self._call(self._events.PublishEvents, request, idempotent=safe, timeout=timeout)
        return [convert.published(r, e.idempotency_key) for r, e in zip(response.results, events, strict=True)]

    def publish(
        self,
        events: Iterable[t.Event],
        *,
        batch_size: int = publishing.MAX_EVENTS_PER_CALL,
        timeout: float | None = None,
    ) -> list[t.PublishedEvent]:
        """Publish any number of events in calls of at most ``batch_size``, in order.

        Events without an idempotency key get a fresh one, which the result reports, so each
        batch can be retried safely. A failure raises after the batches before it were
        published; their results are on the exception as ``published``.
        """
        results: list[t.PublishedEvent] = []
        for batch in publishing.batches(events, batch_size):
            try:
                results.extend(self.publish_events(batch, timeout=timeout))
            except TidingsError as exc:
                exc.published = tuple(results)
                raise
        return results

    # -- deliveries -------------------------------------------------------------------------------

    def list_deliveries(
        self,
        parent: str,
        where: t.DeliveryFilter | None = None,
        *,
        view: t.DeliveryView | None = None,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[t.Delivery]:
        """Deliveries under a hook, project or company, newest first, matching ``where``."""
        filters = where or t.DeliveryFilter()

        def fetch(token: str) -> deliveries_pb2.ListDeliveriesResponse:
            request = convert.list_deliveries_request(parent, filters, view, page_size)
            request.page_token = token
            return self._call(self._deliveries.ListDeliveries, request, idempotent=True, timeout=timeout)

        return self._paged(fetch, lambda r: map(convert.delivery, r.deliveries), lambda r: r.next_page_token)

    def get_delivery(
        self, name: str, *, view: t.DeliveryView | None = None, timeout: float | None = None
    ) -> t.Delivery:
        """One delivery; FULL view (body and attempts) unless ``view`` says otherwise."""
        request = deliveries_pb2.GetDeliveryRequest(
            name=name,
            view=convert.DELIVERY_VIEW[view] if view else deliveries_pb2.DELIVERY_VIEW_UNSPECIFIED,
        )
        return convert.delivery(self._call(self._deliveries.GetDelivery, request, idempotent=True, timeout=timeout))

    def get_hook_overview(self, name: str, *, project_id: int = 0, timeout: float | None = None) -> t.HookOverview:
        """The hook at a glance; ``project_id`` narrows a company hook's counts, success rate and
        next retry to that project's deliveries."""
        request = deliveries_pb2.GetHookOverviewRequest(name=name, project_id=project_id)
        response = self._call(self._deliveries.GetHookOverview, request, idempotent=True, timeout=timeout)
        return convert.hook_overview(response)

    def redeliver(self, name: str, *, timeout: float | None = None) -> t.RedeliverResult:
        """Queue one delivery again. Not retried: a repeat could send it twice."""
        request = deliveries_pb2.RedeliverDeliveriesRequest(name=name)
        response = self._call(self._deliveries.RedeliverDeliveries, request, idempotent=False, timeout=timeout)
        return convert.redeliver_result(response)

    def redeliver_matching(
        self, parent: str, filter: str = "", *, limit: int = 0, timeout: float | None = None
    ) -> t.RedeliverResult:
        """Queue again up to ``limit`` (server default 100) non-pending deliveries matching ``filter``."""
        request = deliveries_pb2.RedeliverDeliveriesRequest(parent=parent, filter=filter, limit=limit)
        response = self._call(self._deliveries.RedeliverDeliveries, request, idempotent=False, timeout=timeout)
        return convert.redeliver_result(response)

    def send_test_event(self, name: str, *, timeout: float | None = None) -> t.EndpointTestResult:
        """Send a test event to the hook's endpoint now and report its answer (nothing is recorded)."""
        request = deliveries_pb2.SendTestEventRequest(name=name)
        response = self._call(self._deliveries.SendTestEvent, request, idempotent=False, timeout=timeout)
        return convert.endpoint_test_result(response)

    def watch(
        self,
        parent: str,
        *,
        statuses: Iterable[t.DeliveryStatus] = (),
        resume_token: str = "",
        reconnect_for: float | None = None,
        on_retry: Callable[[TidingsError, int, float], None] | None = None,
        on_connected: Callable[[int], None] | None = None,
    ) -> Generator[t.DeliveryChange]:
        """Every status change under ``parent`` as it happens, for as long as you iterate.

        A dropped stream (UNAVAILABLE, or RESOURCE_EXHAUSTED for a slow reader) is reopened
        after a backoff with the last resume token received, so no change is missed or
        repeated; even before the first change, the stream's start is known (the server names
        it when the stream opens), so a quiet watch loses nothing either. Reconnecting gives up
        with the error after ``Options.retry.max_attempts`` failed reconnects in a row, or,
        with ``reconnect_for``, once that many seconds of failed reconnects have passed (a
        server restart, a network blip); a stream that had stayed open for a while counts as a
        working connection, so idle drops of a quiet watch never add up.

        ``on_retry(error, attempt, delay)`` is called before each wait to reconnect, and
        ``on_connected(retries)`` whenever a stream is open (0 the first time: changes from
        then on are seen). A slow reader's drop names the token to go on from, which is used
        if no change had arrived yet. Closing the iterator cancels the stream.
        """
        wanted = tuple(statuses)
        token = resume_token
        failures = 0
        outage_start = 0.0
        while True:
            call = self._deliveries.WatchDeliveries(
                convert.watch_request(parent, wanted, token), metadata=self._metadata
            )
            opened = time.monotonic()
            try:
                started = started_at(call.initial_metadata())
                if started:
                    token = token or started
                    if on_connected is not None:
                        on_connected(failures)
                    failures = 0
                for message in call:
                    change = convert.delivery_change(message)
                    token = change.resume_token or token
                    failures = 0
                    yield change
                return
            except grpc.RpcError as exc:
                code: grpc.StatusCode = exc.code()
                token = token or dropped_at(exc.details())
                now = time.monotonic()
                if now - opened >= HEALTHY_STREAM_SECONDS:
                    failures = 0
                if failures == 0:
                    outage_start = now
                failures += 1
                if reconnect_for is None:
                    exhausted = failures >= self.options.retry.max_attempts
                else:
                    exhausted = now - outage_start >= reconnect_for
                if not resumable(code) or exhausted:
                    raise from_rpc_error(exc) from None
                error = from_rpc_error(exc)
            finally:
                call.cancel()
            delay = self.options.retry.backoff(failures)
            if reconnect_for is not None:
                delay = max(0.0, min(delay, outage_start + reconnect_for - time.monotonic()))
            if on_retry is not None:
                on_retry(error, failures, delay)
            time.sleep(delay)
