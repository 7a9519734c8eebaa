"""The console's ASGI application: routes, templates, static files, the gRPC client's lifetime,
and how failures reach the page (the gRPC code and message, never a traceback)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from tidings_client import AsyncClient, Options, TidingsError
from tidings_client.console import views
from tidings_client.console.pages import Pages
from tidings_client.console.security import CsrfError, Guard
from tidings_client.convert import ProtocolError

log = logging.getLogger("tidings.console")

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

PREFIXES = ("/companies/{company:int}", "/companies/{company:int}/projects/{project:int}")


def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tidings_client.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        utc=views.utc, span=views.span, percent=views.percent, status_label=views.status_label, text=views.as_text
    )
    return Jinja2Templates(env=env)


def build_app(options: Options, *, port: int, secret: str) -> Guard:
    """The app behind its guard. The AsyncClient opens in the lifespan: grpc.aio channels
    belong to the event loop that serves."""
    view = templates()
    pages = Pages(options, view)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pages.client = AsyncClient(options=options)
        try:
            yield
        finally:
            await pages.client.close()

    def page_error(request: Request, status: int, title: str, message: str) -> Response:
        return pages.render(request, "error.html", status, title=title, message=message, code=status)

    async def on_server_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TidingsError)
        return page_error(request, HTTP_STATUS.get(exc.code, 502), exc.code.name, exc.message)

    async def on_protocol_error(request: Request, exc: Exception) -> Response:
        return page_error(request, 502, "Unexpected answer", str(exc))

    async def on_csrf(request: Request, exc: Exception) -> Response:
        return page_error(request, 403, "Refused", str(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page_error(request, exc.status_code, "Not here", exc.detail)

    async def on_bug(request: Request, exc: Exception) -> Response:
        log.exception("console error on %s", request.url.path)
        return page_error(request, 500, "Console error", f"{type(exc).__name__}: the console could not show this page")

    routes: list[BaseRoute] = [
        Route("/", pages.home, methods=["GET"]),
        Route("/live", pages.live, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("tidings_client.console", "static")]), name="static"),
    ]
    for prefix in PREFIXES:
        routes += [
            Route(prefix, pages.parent_home, methods=["GET"]),
            Route(f"{prefix}/hooks", pages.hooks, methods=["GET"]),
            Route(f"{prefix}/hooks:new", pages.new_hook, methods=["GET", "POST"]),
            Route(f"{prefix}/hooks:catalog", pages.catalog_grid, methods=["GET"]),
            Route(prefix + "/hooks/{hook}", pages.hook, methods=["GET", "POST"]),
            Route(prefix + "/hooks/{hook}/deliveries/{delivery}", pages.delivery, methods=["GET", "POST"]),
        ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            TidingsError: on_server_error,
            ProtocolError: on_protocol_error,
            CsrfError: on_csrf,
            HTTPException: on_http,
            Exception: on_bug,
        },
    )
    guard = Guard(app, port=port, secret=secret)
    pages.guard = guard
    return guard
