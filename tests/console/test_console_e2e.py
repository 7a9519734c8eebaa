"""The console end to end, as an admin uses it: Chromium, the real ``tidings console``, a real
server process and a real receiver. What Procore's Webhooks page offers, step by step."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.console.conftest import ConsoleProcess, sign_in
from tests.http_sink import Sink
from tidings_client import Client, DeliveryStatus, Event

AUTH = "Bearer 3f9c2d7a81e04b6f4e94b"


def wait_status(client: Client, hook: str, count: int, status: DeliveryStatus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in client.list_deliveries(hook) if d.status == status]
        if len(found) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} {status} deliveries did not appear under {hook}")


def make_hook(client: Client, project: str, url: str, hook_id: str = "erp") -> str:
    hook = client.create_hook(
        project, url, "procore.v4", display_name="ERP sync", hook_id=hook_id, authorization_header=AUTH
    )
    client.create_triggers(hook.name, [("RFIs", "create"), ("RFIs", "update"), ("Submittals", "update")])
    return hook.name


def publish(client: Client, project: str, resource: str, resource_id: int, event_type: str) -> None:
    company, project_id = (int(x) for x in re.findall(r"\d+", project))
    client.publish([Event(company, resource, resource_id, event_type, user_id=5447, project_id=project_id)])


def test_create_hook_through_the_form_then_pause_resume_and_delete(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    sign_in(page, console, f"/{project}/hooks")
    expect(page.get_by_text("No hooks here yet")).to_be_visible()
    page.get_by_role("link", name="Create Hook").click()

    page.get_by_label("Endpoint URL").fill(sink.url("/procore"))
    page.get_by_label("Authorization header").fill(AUTH)
    page.get_by_label("Payload format").select_option("procore.v4")
    page.get_by_label("Name", exact=False).last.fill("ERP sync")
    page.get_by_label("Hook ID").fill("erp-sync")
    expect(page.get_by_text("cannot be changed once the hook is created")).to_be_visible()
    # The picker: search narrows the resource × event type grid.
    page.get_by_label("Search resources").fill("rfi")
    expect(page.locator("#event-table tbody tr:visible")).to_have_count(2)
    expect(page.get_by_text("2 resources")).to_be_visible()
    page.get_by_label("RFIs: create").check()
    page.get_by_label("RFIs: update").check()
    page.get_by_label("Search resources").fill("submittals")
    # A row's "All" ticks every event of the resource, and unticks them again.
    page.get_by_label("Submittals: all events").check()
    expect(page.get_by_label("Submittals: delete", exact=True)).to_be_checked()
    page.get_by_label("Submittals: all events").uncheck()
    expect(page.get_by_label("Submittals: create", exact=True)).not_to_be_checked()
    page.get_by_label("Submittals: update", exact=True).check()
    page.get_by_role("button", name="Create", exact=True).click()

    hook = f"{project}/hooks/erp-sync"
    expect(page).to_have_url(re.compile(re.escape(hook) + r"\?flash="))
    expect(page.locator(".flash")).to_contain_text("Created ERP sync")
    secret = page.get_by_label(re.compile("Signing secret"))
    expect(secret).to_have_value(re.compile(r"^whsec_"))
    expect(page.get_by_text("fixed at creation")).to_be_visible()
    expect(page.get_by_text("••••••e94b")).to_be_visible()
    selected = page.locator(".chip label")
    expect(selected).to_have_text(["RFIs · create", "RFIs · update", "Submittals · update"])
    assert {(t.resource_name, t.event_type) for t in client.list_triggers(hook)} == {
        ("RFIs", "create"),
        ("RFIs", "update"),
        ("Submittals", "update"),
    }
    # Shown once: the same page again has no secret.
    page.reload()
    expect(page.get_by_label(re.compile("Signing secret"))).to_have_count(0)

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=re.compile("Webhooks$")).click()
    row = page.get_by_role("row", name=re.compile("ERP sync"))
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("procore.v4")
    expect(row).to_contain_text(sink.url("/procore"))
    row.get_by_role("button", name="Pause ERP sync").click()
    expect(page.locator(".flash")).to_contain_text("Paused ERP sync")
    expect(page.get_by_role("row", name=re.compile("ERP sync"))).to_contain_text("Paused")
    assert client.get_hook(hook).status == "paused"
    page.get_by_role("button", name="Resume ERP sync").click()
    expect(page.get_by_role("row", name=re.compile("ERP sync"))).to_contain_text("Active")

    page.get_by_role("link", name="Delete ERP sync").click()
    expect(page.get_by_role("heading", name="Delete this hook?")).to_be_visible()
    page.get_by_role("button", name="Delete hook").click()
    expect(page.locator(".flash")).to_contain_text(f"Deleted {hook}")
    expect(page.get_by_text("No hooks here yet")).to_be_visible()
    assert list(client.list_hooks(project)) == []


def test_a_bad_form_is_refused_on_the_page(page: Page, console: ConsoleProcess, project: str) -> None:
    sign_in(page, console, f"/{project}/hooks:new")
    page.get_by_label("Endpoint URL").fill("ftp://example.com/in")
    page.get_by_label("RFIs: create").check()
    page.get_by_role("button", name="Create", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("INVALID_ARGUMENT")
    expect(alert).to_contain_text("destination_url")
    # What was entered stays, the chosen events too.
    expect(page.get_by_label("Endpoint URL")).to_have_value("ftp://example.com/in")
    expect(page.get_by_label("RFIs: create")).to_be_checked()
    expect(page.locator("body")).not_to_contain_text("Traceback")


def test_events_arrive_live_and_the_list_searches_and_filters(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    hook = make_hook(client, project, sink.url())
    sign_in(page, console, f"/{hook}")
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")
    page.evaluate("window.notReloaded = true")
    expect(page.get_by_text("No events match")).to_be_visible()

    publish(client, project, "RFIs", 54321, "update")
    publish(client, project, "RFIs", 54322, "create")
    publish(client, project, "Submittals", 777, "update")
    rows = page.locator("table.events tbody tr[data-delivery]")
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="Delivered")).to_have_count(3)
    expect(page.locator('[data-count="delivered"]')).to_have_text("3")
    assert page.evaluate("window.notReloaded") is True
    first = rows.first
    expect(first).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"))

    page.get_by_label("Resource ID").fill("54321")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("54321")
    page.get_by_role("link", name="Clear").click()

    page.get_by_label("Resource Name").select_option("Submittals")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("777")

    page.get_by_label("Resource Name").select_option("")
    page.get_by_label("Event Status").select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No events match")).to_be_visible()
    page.get_by_label("Event Status").select_option("delivered")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(3)

    page.get_by_label("Event Status").select_option("")
    page.get_by_label("Filter", exact=False).first.fill('event_type = "create"')
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("54322")

    page.get_by_label("Filter", exact=False).first.fill("event_type = = create")
    page.get_by_role("button", name="Apply").click()
    error = page.locator("#filter-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(page.locator("#filter")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("the filter needs fixing")).to_be_visible()

    # A live row appears under the active filters only when it matches them.
    page.get_by_label("Filter", exact=False).first.fill('resource_name = "RFIs"')
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(2)
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")
    publish(client, project, "RFIs", 54323, "update")
    publish(client, project, "Submittals", 778, "update")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("54323")


def test_paging_through_events(page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink) -> None:
    hook = make_hook(client, project, sink.url())
    company, project_id = (int(x) for x in re.findall(r"\d+", project))
    client.publish([Event(company, "RFIs", 1000 + i, "update", user_id=1, project_id=project_id) for i in range(30)])
    wait_status(client, hook, 30, DeliveryStatus.DELIVERED)
    sign_in(page, console, f"/{hook}")
    rows = page.locator("table.events tbody tr[data-delivery]")
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous page").click()
    expect(rows).to_have_count(25)


def test_an_event_shows_its_attempts_and_is_redelivered(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    sink.answers["/flaky"] = [404, 200]
    hook = make_hook(client, project, sink.url("/flaky"))
    publish(client, project, "RFIs", 54321, "update")
    wait_status(client, hook, 1, DeliveryStatus.FAILED)
    sign_in(page, console, f"/{hook}")
    expect(page.locator('[data-count="failed"]')).to_have_text("1")
    expect(page.locator("#overview")).to_contain_text("404")
    page.get_by_role("link", name="RFIs").first.click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("RFIs 54321 · update")
    expect(page.locator("#delivery-h + dl")).to_contain_text("Failed")
    attempt = page.locator("article.attempt").first
    expect(attempt).to_contain_text("Attempt 1")
    expect(attempt).to_contain_text("HTTP 404")
    attempt.get_by_text("Request headers").click()
    headers = attempt.locator("table.headers").first
    expect(headers).to_contain_text("Authorization")
    expect(headers).to_contain_text("••••••e94b")
    expect(headers).not_to_contain_text(AUTH)
    _, sent = sink.received[0]
    assert page.locator("pre.body").first.inner_text() == sent.decode()

    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Redeliver").click()
    expect(page.locator(".flash")).to_contain_text("Queued again")
    page.evaluate("window.notReloaded = true")
    # The second attempt and the new status arrive live.
    expect(page.locator("article.attempt")).to_have_count(2)
    expect(page.locator("#delivery-h + dl")).to_contain_text("Delivered")
    expect(page.locator("article.attempt").nth(1)).to_contain_text("HTTP 200")
    assert page.evaluate("window.notReloaded") is True


def test_send_a_test_event_and_rotate_the_secret(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    hook = make_hook(client, project, sink.url("/tests"))
    sign_in(page, console, f"/{hook}")
    page.get_by_role("button", name="Send test event").click()
    status = page.locator(".flash")
    expect(status).to_have_attribute("role", "status")
    expect(status).to_contain_text("Test event sent: the endpoint answered")
    expect(status).to_contain_text("200")
    assert sink.hits.get("/tests") == 1

    page.get_by_label("Previous secret keeps signing for").select_option("0")
    page.get_by_role("button", name="Rotate signing secret").click()
    expect(page.locator(".flash")).to_contain_text("The previous one stops signing now")
    expect(page.get_by_label(re.compile("Signing secret"))).to_have_value(re.compile(r"^whsec_"))


def test_selected_events_are_removed_and_added(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    hook = make_hook(client, project, sink.url())
    sign_in(page, console, f"/{hook}")
    page.get_by_label("RFIs · create").check()
    page.get_by_role("button", name="Remove selected").click()
    expect(page.locator(".flash")).to_contain_text("Removed 1 event")
    expect(page.locator(".chip label")).to_have_text(["RFIs · update", "Submittals · update"])

    page.get_by_role("link", name="Add or change events").click()
    expect(page.get_by_label("RFIs: update (selected now)")).to_be_checked()
    page.get_by_label("RFIs: delete").check()
    page.get_by_label("Submittals: update (selected now)").uncheck()
    page.get_by_role("button", name="Save events").click()
    expect(page.locator(".flash")).to_contain_text("1 added, 1 removed")
    expect(page.locator(".chip label")).to_have_text(["RFIs · delete", "RFIs · update"])
    assert {(t.resource_name, t.event_type) for t in client.list_triggers(hook)} == {
        ("RFIs", "delete"),
        ("RFIs", "update"),
    }


def test_a_company_hook_selects_company_resources(
    page: Page, console: ConsoleProcess, client: Client, sink: Sink
) -> None:
    company = "companies/9"
    sign_in(page, console, f"/{company}/hooks")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Company 9")
    page.get_by_role("link", name="Create Hook").click()
    page.get_by_label("Endpoint URL").fill(sink.url("/company"))
    page.get_by_label("Payload format").select_option("procore.v4")
    # The company catalog: company resources, and not the project-only ones.
    expect(page.get_by_label("Change Types: create")).to_be_visible()
    expect(page.get_by_label("RFIs: create")).to_have_count(0)
    page.get_by_label("Change Types: create").check()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.locator(".flash")).to_contain_text("Created")
    expect(page.locator(".chip label")).to_have_text(["Change Types · create"])
    hook = page.url.split("?", 1)[0].split("/", 3)[3]
    assert hook.startswith(f"{company}/hooks/")
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")
    client.publish([Event(9, "Change Types", 31, "create", user_id=1)])
    expect(page.locator("table.events tbody tr[data-delivery]")).to_have_count(1)
    expect(page.locator("table.events tbody tr[data-delivery]").first).to_contain_text("Change Types")


def test_the_hooks_list_follows_deliveries_live(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    make_hook(client, project, sink.url())
    sign_in(page, console, f"/{project}/hooks")
    row = page.get_by_role("row", name=re.compile("ERP sync"))
    expect(row).to_contain_text("none finished yet")
    expect(page.locator("#live-status")).to_contain_text("Live updates: on")
    publish(client, project, "RFIs", 1, "update")
    expect(row).to_contain_text("100.0% of 1 finished")


def test_the_endpoint_is_edited_and_the_payload_format_stays(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    hook = make_hook(client, project, sink.url())
    sign_in(page, console, f"/{hook}")
    page.get_by_role("link", name="Edit endpoint").click()
    expect(page.get_by_label("Payload format")).to_have_value("procore.v4")
    expect(page.get_by_label("Payload format")).not_to_be_editable()
    page.get_by_label("Endpoint URL").fill("ftp://nowhere")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("INVALID_ARGUMENT")
    page.get_by_label("Endpoint URL").fill(sink.url("/moved"))
    page.get_by_label("Name").fill("ERP sync (moved)")
    page.get_by_label("Remove the Authorization header").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved ERP sync (moved)")
    saved = client.get_hook(hook)
    assert (saved.destination_url, saved.display_name, saved.authorization_header) == (
        sink.url("/moved"),
        "ERP sync (moved)",
        "",
    )
    assert saved.payload_format == "procore.v4"


def test_failed_events_are_redelivered_together(
    page: Page, console: ConsoleProcess, client: Client, project: str, sink: Sink
) -> None:
    sink.answers["/down"] = [404, 404, 200]
    hook = make_hook(client, project, sink.url("/down"))
    publish(client, project, "RFIs", 1, "update")
    publish(client, project, "RFIs", 2, "update")
    wait_status(client, hook, 2, DeliveryStatus.FAILED)
    sign_in(page, console, f"/{hook}")
    rows = page.locator("table.events tbody tr[data-delivery]")
    expect(rows.filter(has_text="Failed")).to_have_count(2)
    page.get_by_role("button", name="Redeliver failed and discarded events").click()
    expect(page.locator(".flash")).to_contain_text("Queued 2 event(s) again")
    expect(rows.filter(has_text="Delivered")).to_have_count(2)
    expect(page.locator('[data-count="delivered"]')).to_have_text("2")


def switch_format(page: Page, name: str) -> None:
    """Pick another payload format and wait until its grid has replaced the one shown: each
    switch waits for its own grid, so a later step never acts on the grid of an earlier one."""
    page.locator("#event-grid").evaluate("g => g.dataset.old = 'yes'")
    page.get_by_label("Payload format").select_option(name)
    expect(page.locator("#event-grid[data-old]")).to_have_count(0)
    expect(page.locator("#event-grid")).to_have_count(1)


def test_another_payload_format_keeps_the_picked_events(
    page: Page, console: ConsoleProcess, client: Client, project: str
) -> None:
    formats = [f.name for f in client.list_payload_formats()]
    assert {"procore.v2", "procore.v4"} <= set(formats)
    sign_in(page, console, f"/{project}/hooks:new")
    expect(page.get_by_label("Payload format")).to_have_value(formats[0])
    switch_format(page, "procore.v2")
    page.get_by_label("RFIs: create").check()
    switch_format(page, "procore.v4")
    expect(page.get_by_label("RFIs: create")).to_be_checked()
    expect(page.get_by_label("RFIs: update")).not_to_be_checked()
    # The new grid's search works too.
    page.get_by_label("Search resources").fill("rfis")
    expect(page.locator("#event-table tbody tr:visible")).to_have_count(1)
