"""Only the browser that opened this run's URL drives the console: the secret, the cookie, the
Host and Origin checks and the CSRF token, each refused on its own."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode

from playwright.sync_api import Page, expect

from tests.console.conftest import ConsoleProcess, sign_in


def request(
    console: ConsoleProcess, method: str, path: str, headers: dict[str, str] | None = None, body: str = ""
) -> http.client.HTTPResponse:
    host, port = console.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.request(method, path, body=body.encode() or None, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def session(console: ConsoleProcess) -> tuple[str, str]:
    """The cookie header the printed URL earns, and a page's CSRF token."""
    answer = request(console, "GET", "/?" + console.url.split("?", 1)[1])
    assert answer.status == 303
    assert answer.getheader("location") == "/"
    set_cookie = answer.getheader("set-cookie") or ""
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
    cookie = set_cookie.split(";", 1)[0]
    host, port = console.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    conn.request("GET", "/companies/8/projects/6999/hooks:new", headers={"cookie": cookie})
    html = conn.getresponse().read().decode()
    conn.close()
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return cookie, found.group(1)


def test_without_the_secret_everything_is_refused(console: ConsoleProcess) -> None:
    for path in ("/", "/companies/8/hooks", "/static/console.js", "/live?parent=companies/8"):
        answer = request(console, "GET", path)
        assert answer.status == 403, path
    assert request(console, "GET", "/?token=not-the-secret").status == 403
    assert (
        request(console, "GET", "/", {"cookie": f"tidings_console_{console.base.rsplit(':', 1)[1]}=guess"}).status
        == 403
    )


def test_the_secret_becomes_a_strict_cookie_and_pages_carry_a_strict_policy(console: ConsoleProcess) -> None:
    cookie, _ = session(console)
    answer = request(console, "GET", "/companies/8/hooks", {"cookie": cookie})
    assert answer.status == 200
    policy = answer.getheader("content-security-policy") or ""
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.getheader("x-frame-options") == "DENY"


def test_another_host_name_is_refused(console: ConsoleProcess) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: the Host header gives it away."""
    cookie, _ = session(console)
    port = console.base.rsplit(":", 1)[1]
    answer = request(console, "GET", "/companies/8/hooks", {"cookie": cookie, "host": f"rebind.example:{port}"})
    assert answer.status == 403
    assert request(console, "GET", "/?" + console.url.split("?", 1)[1], {"host": "rebind.example"}).status == 403


def test_a_change_needs_the_csrf_token_and_the_console_origin(console: ConsoleProcess) -> None:
    cookie, csrf = session(console)
    form = {"destination_url": "http://127.0.0.1:9/in", "payload_format": "procore.v4", "hook_id": "guarded"}
    path = "/companies/8/projects/6999/hooks:new"
    base = {"cookie": cookie, "content-type": "application/x-www-form-urlencoded", "origin": console.base}
    assert request(console, "POST", path, base, urlencode(form)).status == 403
    assert request(console, "POST", path, base, urlencode({**form, "csrf": "forged"})).status == 403
    elsewhere = {**base, "origin": "http://attacker.example"}
    assert request(console, "POST", path, elsewhere, urlencode({**form, "csrf": csrf})).status == 403
    no_origin = {k: v for k, v in base.items() if k != "origin"}
    assert request(console, "POST", path, no_origin, urlencode({**form, "csrf": csrf})).status == 403
    created = request(console, "POST", path, base, urlencode({**form, "csrf": csrf}))
    assert created.status == 303
    assert (created.getheader("location") or "").startswith("/companies/8/projects/6999/hooks/guarded?flash=")


def test_a_browser_without_the_secret_sees_a_refusal(page: Page, console: ConsoleProcess) -> None:
    page.goto(console.base + "/companies/8/hooks")
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    expect(page.get_by_text("Open the console with the URL")).to_be_visible()
    # With it, the same browser is in, and the secret has left the address bar.
    sign_in(page, console)
    expect(page).to_have_url(console.base + "/")
    expect(page.get_by_label("Company ID")).to_be_visible()


def test_the_secret_redirect_stays_on_the_console(console: ConsoleProcess) -> None:
    answer = request(console, "GET", "//elsewhere.example/x?" + console.url.split("?", 1)[1] + "&page=2")
    assert answer.status == 303
    assert answer.getheader("location") == "/elsewhere.example/x?page=2"


def test_the_start_page_leads_to_a_company_or_project(page: Page, console: ConsoleProcess) -> None:
    sign_in(page, console)
    page.get_by_label("Company ID").fill("eight")
    page.get_by_role("button", name="Show webhooks").click()
    expect(page.get_by_role("alert")).to_contain_text("Company and project are numbers")
    page.get_by_label("Company ID").fill("8")
    page.get_by_label("Project ID").fill("6778")
    page.get_by_role("button", name="Show webhooks").click()
    expect(page).to_have_url(console.base + "/companies/8/projects/6778/hooks")
    page.goto(console.base + "/companies/8")
    expect(page).to_have_url(console.base + "/companies/8/hooks")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Company 8")
