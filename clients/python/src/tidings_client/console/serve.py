"""Run the console: bind 127.0.0.1, mint this run's secret, serve with uvicorn until Ctrl-C."""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import webbrowser
from urllib.parse import quote

import uvicorn

from tidings_client import Options
from tidings_client.console.app import build_app

HOST = "127.0.0.1"


def serve(options: Options, *, port: int, open_browser: bool, start: str | None) -> None:
    """Serve until interrupted. ``start`` is the company, project or hook the URL opens on."""
    # Bind first so a port of 0 is known before the app (whose Host and Origin checks name it) exists.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    port = sock.getsockname()[1]
    secret = secrets.token_urlsafe(32)
    app = build_app(options, port=port, secret=secret)
    path = "/" + quote(start.strip("/")) if start else "/"
    url = f"http://{HOST}:{port}{path}?token={secret}"
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        # Live pages hold streams open; shutdown should not wait for browsers to leave.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        print(f"tidings console for {options.target} at {url}", flush=True)
        print("Ctrl-C stops it.", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(url)

    async def main() -> None:
        task = asyncio.create_task(announce())
        try:
            await server.serve(sockets=[sock])
        finally:
            task.cancel()

    asyncio.run(main())
