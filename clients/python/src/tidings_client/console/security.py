"""Who may drive the console: only a browser that opened this run's URL, from this machine.

The URL carries a random per-run secret (as Jupyter's token does). The first request with it
is answered with an HttpOnly, SameSite=Strict session cookie and a redirect that drops the
secret from the address bar; every other request needs that cookie, so other local users and
other sites' pages get 403. The Host header must name this console (a DNS-rebinding page's
requests carry its own host name), state-changing requests must come from this console's own
origin, and their forms carry a CSRF token checked with the body (``check_csrf``).
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD"})

# Every page is the console's own: no inline script, no framing, no outside resources.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

REFUSED = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Refused</title>
<h1>Refused</h1><p>{reason}</p></html>"""


class CsrfError(Exception):
    """A form without this run's CSRF token."""


class Guard:
    """ASGI middleware in front of every route (static files and live streams included)."""

    def __init__(self, app: ASGIApp, *, port: int, secret: str) -> None:
        self.app = app
        self.secret = secret
        self.session = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        # Cookies ignore ports: two consoles on one machine must not overwrite each other's.
        self.cookie = f"tidings_console_{port}"
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{host}" for host in self.hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await _refuse(refusal)(scope, receive, send)
            return
        token = request.query_params.get("token")
        if token is not None:
            await self._exchange(request, token)(scope, receive, send)
            return
        scope.setdefault("state", {})["csrf"] = self.csrf

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> str | None:
        if request.headers.get("host", "") not in self.hosts:
            return "This console answers only to its own address on 127.0.0.1."
        if request.query_params.get("token") is not None:
            return None
        cookie = SimpleCookie(request.headers.get("cookie", "")).get(self.cookie)
        if cookie is None or not hmac.compare_digest(cookie.value, self.session):
            return "Open the console with the URL that `tidings console` printed (it carries this run's secret)."
        if request.method not in SAFE_METHODS and not self._same_origin(request):
            return "A change must come from the console's own pages."
        return None

    def _same_origin(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        if origin is not None:
            return origin in self.origins
        referer = request.headers.get("referer")
        return referer is not None and f"{URL(referer).scheme}://{URL(referer).netloc}" in self.origins

    def _exchange(self, request: Request, token: str) -> Response:
        if not hmac.compare_digest(token, self.secret) or request.method not in SAFE_METHODS:
            return _refuse("That secret is not this console's. Open the URL `tidings console` printed.")
        rest = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"]
        # One leading slash: `//elsewhere` would send the browser to another site.
        target = "/" + request.url.path.lstrip("/") + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.cookie, self.session, httponly=True, samesite="strict", path="/")
        return response

    def check_csrf(self, given: str | None) -> None:
        if given is None or not hmac.compare_digest(given, self.csrf):
            raise CsrfError("the form is missing this console's CSRF token; reload the page and try again")


def _refuse(reason: str) -> Response:
    return HTMLResponse(REFUSED.format(reason=reason), status_code=403, headers=SECURITY_HEADERS)
