"""The ``tidings`` root command: global options, and the per-invocation state commands share."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import click

from tidings_client.cli.config import Settings, resolve
from tidings_client.cli.output import Output, parse_mode
from tidings_client.client import Client
from tidings_client.options import Options, Tls

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

ROOT_EXAMPLES = """\b
Examples:
  tidings hooks create --project 8/6778 --url https://example.com/in --format procore.v4 --event RFIs:create
  tidings hooks list --project 8/6778
  tidings events list companies/8/projects/6778/hooks/procore-sync
  tidings catalog resources --scope project --search rfi
  tidings publish --project 8/6778 --resource RFIs --resource-id 54321 --event-type update --user-id 5447
  tidings --json deliveries list companies/8/projects/6778 --status failed
  tidings deliveries list --status failed -o jsonpath=.name     # options for output go anywhere
  tidings hooks list --fields name,status,destination_url
  tidings --profile prod deliveries watch companies/8/projects/6778/hooks/procore-sync

\b
Exit codes:
  0 ok, 1 server error, 2 usage error or input the server refused (INVALID_ARGUMENT),
  3 not found, 4 conflict (ALREADY_EXISTS, FAILED_PRECONDITION), 5 server unreachable or too slow
  (UNAVAILABLE, DEADLINE_EXCEEDED), 6 not allowed (UNAUTHENTICATED, PERMISSION_DENIED),
  130 interrupted.
"""


def client_options(s: Settings) -> Options:
    """How to reach the server: TLS when asked for, or when certificates are given (a CA or a
    client certificate means nothing over plaintext, so naming one is asking for TLS)."""
    tls = None
    if s.tls or (s.tls is None and (s.ca_cert or s.client_cert)):
        _check_tls_files(s)
        try:
            tls = Tls.from_files(s.ca_cert, s.client_cert, s.client_key, s.tls_server_name)
        except OSError as exc:
            raise click.UsageError(f"cannot read a TLS file: {exc}") from None
    return Options(target=s.target, tls=tls, token=s.token, timeout=s.timeout)


def _check_tls_files(s: Settings) -> None:
    """Refuse unusable PEM files before connecting: gRPC would only log a line of its own and
    fail the call as UNAVAILABLE, as if the server were down. The standard ``ssl`` module reads
    them as gRPC would (a certificate, and the key of that certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if s.ca_cert is not None:
        try:
            context.load_verify_locations(cafile=s.ca_cert)
        except (ssl.SSLError, OSError) as exc:
            raise click.UsageError(f"--ca-cert: {s.ca_cert}: not PEM certificates ({exc.strerror or exc})") from None
    if s.client_cert is not None and s.client_key is not None:
        try:
            context.load_cert_chain(s.client_cert, s.client_key)
        except (ssl.SSLError, OSError) as exc:
            raise click.UsageError(
                f"--client-key: {s.client_key} is not the unencrypted key of the certificate in {s.client_cert}"
                f" ({exc.strerror or exc})"
            ) from None


@dataclass
class Env:
    """Shared by the commands of one invocation; the connection opens on first use."""

    settings: Settings
    out: Output
    _client: Client | None = field(default=None, repr=False)
    # The server this process talks to, for an error that must name it after the command ended.
    connected_to: ClassVar[str | None] = None

    def client(self) -> Client:
        if self._client is None:
            Env.connected_to = self.settings.target
            self._client = Client(options=client_options(self.settings))
        return self._client

    def parent(self, given: str | None, what: str = "PARENT") -> str:
        """The name a command acts on, or the profile's ``parent`` when the command line has none."""
        if given:
            return given.rstrip("/")
        if self.settings.parent:
            return self.settings.parent
        raise click.UsageError(f"give {what}, or set `parent` in the profile")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_env = click.make_pass_decorator(Env)


class Declined(Exception):
    """The person answered no: nothing was done, which is not an error but not success either."""


def confirm(question: str) -> None:
    """Ask on the terminal; a "no" ends the command with exit 1 and "nothing changed"."""
    if not click.confirm(question):
        raise Declined


@click.group(context_settings=CONTEXT_SETTINGS, epilog=ROOT_EXAMPLES)
@click.version_option(package_name="tidings-client", prog_name="tidings")
@click.option(
    "--target",
    envvar="TIDINGS_TARGET",
    show_envvar=True,
    metavar="HOST:PORT",
    help="The server's gRPC address [default: 127.0.0.1:50051].",
)
@click.option(
    "--token", envvar="TIDINGS_TOKEN", show_envvar=True, help="Bearer token sent as `authorization: Bearer …`."
)
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of tables (-o json).")
@click.option(
    "--output",
    "-o",
    "output",
    metavar="FORM",
    help="table, json, jsonl, tsv, name or jsonpath=.FIELD (e.g. jsonpath=.event.user_id) [default: table].",
)
@click.option("--fields", metavar="A,B.C", help="Only these fields (dotted for nested ones), in JSON or as columns.")
@click.option("--profile", envvar="TIDINGS_PROFILE", show_envvar=True, help="A profile of the config file to use.")
@click.option(
    "--config",
    "config_path",
    envvar="TIDINGS_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config file [default: ~/.config/tidings/config.toml].",
)
@click.option("--tls/--plaintext", default=None, help="Use TLS (implied by --ca-cert or --client-cert).")
@click.option(
    "--ca-cert", "--ca-file", "ca_cert", type=click.Path(dir_okay=False), help="PEM root certificates to trust."
)
@click.option("--client-cert", type=click.Path(dir_okay=False), help="PEM client certificate for mutual TLS.")
@click.option("--client-key", type=click.Path(dir_okay=False), help="PEM private key of --client-cert.")
@click.option("--tls-server-name", help="The name to check the server's certificate against.")
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds each call may take [default: 30]."
)
@click.pass_context
def root(
    ctx: click.Context,
    target: str | None,
    token: str | None,
    as_json: bool,
    output: str | None,
    fields: str | None,
    profile: str | None,
    config_path: Path | None,
    tls: bool | None,
    ca_cert: str | None,
    client_cert: str | None,
    client_key: str | None,
    tls_server_name: str | None,
    timeout: float | None,
) -> None:
    """Manage tidings webhooks: hooks, the events they send, and their delivery history."""
    flags: dict[str, object] = {
        "target": target,
        "token": token,
        "tls": tls,
        "ca_cert": ca_cert,
        "client_cert": client_cert,
        "client_key": client_key,
        "tls_server_name": tls_server_name,
        "timeout": timeout,
    }
    # A file named on the command line must exist; one from TIDINGS_CONFIG or the default
    # location is optional, like having no config at all.
    named = ctx.get_parameter_source("config_path") == click.core.ParameterSource.COMMANDLINE
    settings = resolve(flags, config_path, profile, must_exist=named)
    if as_json and output not in (None, "json"):
        raise click.UsageError(f"--json and -o {output} disagree: give one")
    try:
        mode, path = parse_mode(output or ("json" if as_json else "table"))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    chosen = tuple(f.strip() for f in (fields or "").split(",") if f.strip())
    env = Env(settings, Output(mode, jsonpath=path, fields=chosen))
    ctx.obj = env
    ctx.call_on_close(env.close)
