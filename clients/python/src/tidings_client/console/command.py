"""The ``tidings console`` command. It imports only click at load time, so the CLI stays light
and a base install without the ``console`` extra still runs every other command."""

from __future__ import annotations

import dataclasses

import click

from tidings_client.cli.app import CONTEXT_SETTINGS, Env, pass_env

EXAMPLES = """\b
Examples:
  tidings console
  tidings --profile prod console --port 8765 --no-browser
  tidings console --parent companies/8/projects/6778

\b
The printed URL carries a secret for this run only; open it, and the browser keeps the
session in a cookie. Ctrl-C stops the console.
"""

# A console outlives server restarts: reconnect within seconds, not grpc's default of minutes.
RECONNECT = (("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 2000))


@click.command(context_settings=CONTEXT_SETTINGS, epilog=EXAMPLES)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 to serve on; 0 picks a free one.",
)
@click.option("--browser/--no-browser", default=True, help="Open the console in the default browser.")
@click.option("--parent", help="The company, project or hook to open first [default: the profile's parent].")
@pass_env
def console(env: Env, port: int, browser: bool, parent: str | None) -> None:
    """Serve the web console (hooks, events, deliveries) on 127.0.0.1, talking to the server as you."""
    try:
        from tidings_client.console.serve import serve
    except ImportError as exc:
        raise click.ClickException(
            f"the console needs its extra: pip install 'tidings-client[console]' ({exc.name} is missing)"
        ) from None
    # The same target, TLS and token as every other command, from the same flags and profile.
    options = env.client().options
    options = dataclasses.replace(options, channel_options=(*options.channel_options, *RECONNECT))
    try:
        serve(options, port=port, open_browser=browser, start=parent or env.settings.parent)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}") from None
