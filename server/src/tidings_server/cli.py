"""The ``tidings-server`` command: ``serve`` runs a server (or several processes of one),
``status`` reports what a store's servers are doing, ``plugins`` shows what is loaded, ``config show`` prints
the settings ``serve`` would run with."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import trio

from tidings_server import (
    __version__,
    cluster,
    collector,
    logs,
    operational,
    secrets_cli,
    settings,
    status_report,
    supervisor,
    tokens_cli,
)
from tidings_server.app import (
    DEFAULT_LISTEN,
    DEFAULT_STORE,
    Config,
    ConfigError,
    check_listen,
    load_tls,
    redact,
    serve,
)
from tidings_server.delivery.breaker import BreakerConfig
from tidings_server.delivery.engine import EngineConfig
from tidings_server.delivery.render_pool import PoolConfig
from tidings_server.grpc_api.server import ListenError
from tidings_server.keys import ENV_VAR
from tidings_server.plugins.manager import PluginError, Plugins
from tidings_server.telemetry.metrics import MetricsConfig
from tidings_server.telemetry.tracing import TracingConfig
from tidings_server.tls import TlsFiles

log = logging.getLogger("tidings_server")
ENGINE_DEFAULTS = EngineConfig()
POOL_DEFAULTS = PoolConfig()

EXAMPLES = """\
examples:
  tidings-server serve
  tidings-server serve --listen 127.0.0.1:6000 --store sqlite:////var/lib/tidings/tidings.sqlite3
  tidings-server serve --store memory: --allow-http --allow-private-destinations --no-auth
  tidings-server secrets init-key var/secrets.key
  tidings-server tokens create --store sqlite:///tidings.sqlite3 --role owner --name ops
  tidings-server serve --secrets-key-file var/secrets.key
  tidings-server serve --tls-cert server.pem --tls-key server.key --client-ca clients-ca.pem
  tidings-server serve --config /etc/tidings/server.toml
  tidings-server config show --config /etc/tidings/server.toml
  tidings-server serve --store postgresql://tidings@db/tidings --processes 4
  tidings-server serve --store postgresql://tidings@db/tidings --role worker
  tidings-server status --store postgresql://tidings@db/tidings
  tidings-server plugins
"""
# Stores one process holds alone: several processes on them would not share work, or the file.
SINGLE_PROCESS_SCHEMES = {
    "sqlite": "a SQLite file has one server at a time (it is locked to the process that opened it)",
    "memory": "a memory: store lives inside one process; each process would have its own, empty one",
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="tidings-server",
        description="tidings webhook delivery server.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "serve",
        help="run the gRPC server until SIGINT or SIGTERM",
        description="Run the gRPC server (HookService, CatalogService, EventService, health, reflection) and the"
        " delivery engine until SIGINT or"
        " SIGTERM, then stop taking calls and let in-flight ones finish within --shutdown-grace. SIGHUP reads the"
        " TLS files and the secrets key file again, and re-encrypts every secret not under the file's newest key.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help='a TOML file of settings: keys are these options without their dashes (listen = "…");'
        f" {settings.ENV_PREFIX}<OPTION> environment variables override it and the command line overrides both"
        f" (default ${settings.CONFIG_ENV})",
    )
    run.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="address to serve gRPC on; loopback only until callers are authenticated (off loopback plaintext"
        f" needs --allow-plaintext), port 0 picks a free one (default {DEFAULT_LISTEN})",
    )
    run.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="URL",
        help="where hooks and history are kept: sqlite:///relative.db, sqlite:////absolute.db, memory:"
        f" (nothing kept), or a URL a storage plugin handles (default {DEFAULT_STORE}). An SQLite commit"
        " survives a crash of the server process; add ?synchronous=full to survive power loss too",
    )
    run.add_argument("--allow-http", action="store_true", help="accept http:// destination URLs (default: https only)")
    run.add_argument(
        "--allow-private-destinations",
        action="store_true",
        help="accept destinations on internal addresses (loopback, private, link-local, metadata, multicast,"
        " reserved, and IPv6 forms of them; default: refused)",
    )
    run.add_argument(
        "--allow-destination-host",
        action="append",
        default=[],
        metavar="HOST",
        help="accept this one destination host even if it is internal; repeatable",
    )
    run.add_argument(
        "--shutdown-grace",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="how long in-flight calls and delivery attempts may take to finish after a stop signal (default 10)",
    )
    run.add_argument(
        "--retention-days",
        type=_positive_float,
        default=28.0,
        metavar="DAYS",
        help="how long deliveries, attempts and events are kept (default 28)",
    )
    run.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=ENGINE_DEFAULTS.max_in_flight,
        metavar="N",
        help=f"delivery attempts in flight at once across all hooks (default {ENGINE_DEFAULTS.max_in_flight})",
    )
    run.add_argument(
        "--delivery-lease",
        type=_positive_float,
        default=ENGINE_DEFAULTS.lease.total_seconds(),
        metavar="SECONDS",
        help="how long a claimed delivery stays reserved without a heartbeat; the server renews the leases"
        " of its running attempts every third of it, so when a node dies the others take its unfinished"
        f" deliveries once this has passed (default {ENGINE_DEFAULTS.lease.total_seconds():g})",
    )
    run.add_argument(
        "--secrets-key-file",
        type=Path,
        metavar="PATH",
        help="the keyring that encrypts hooks' Authorization headers and signing secrets at rest (made by"
        f" `tidings-server secrets init-key PATH`); or set {ENV_VAR} (base64 keys, newest first, comma-separated)."
        " Needed for any store but memory:",
    )
    run.add_argument(
        "--plaintext-secrets",
        action="store_true",
        help="store secrets unencrypted when no key is given (development only; logged as a warning)",
    )
    run.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve gRPC over TLS with this certificate chain (the server's certificate first); needs --tls-key."
        " SIGHUP reads it, the key and the client CA again without dropping open streams (default: plaintext)",
    )
    run.add_argument("--tls-key", type=Path, metavar="PEM", help="the unencrypted private key of --tls-cert")
    run.add_argument(
        "--client-ca",
        type=Path,
        metavar="PEM",
        help="mutual TLS: refuse, at the handshake, clients without a certificate signed by one of these CAs"
        " (needs --tls-cert)",
    )
    run.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="serve without TLS on a non-loopback address (logged as a warning; default: TLS needed there)",
    )
    run.add_argument(
        "--poison-after",
        type=_positive_int,
        default=ENGINE_DEFAULTS.poison_after,
        metavar="N",
        help="fail a delivery, instead of attempting it again, once more than N of its attempts in a row"
        f" ended with the server stopping mid-attempt (default {ENGINE_DEFAULTS.poison_after})",
    )
    breaker = ENGINE_DEFAULTS.breaker
    deactivate_days = breaker.deactivate_after.total_seconds() / 86400 if breaker.deactivate_after else 0
    run.add_argument(
        "--breaker-failure-ratio",
        type=_fraction,
        default=breaker.ratio,
        metavar="RATIO",
        help="open a hook's circuit (one probe at a time until one succeeds) when at least this share of"
        f" its attempts in the breaker window failed (default {breaker.ratio:g})",
    )
    run.add_argument(
        "--breaker-min-attempts",
        type=_positive_int,
        default=breaker.min_attempts,
        metavar="N",
        help="the fewest attempts in the breaker window for the failure ratio to open a circuit"
        f" (default {breaker.min_attempts})",
    )
    run.add_argument(
        "--breaker-window",
        type=_positive_float,
        default=breaker.window.total_seconds(),
        metavar="SECONDS",
        help=f"the window the failure ratio is taken over (default {breaker.window.total_seconds():g})",
    )
    run.add_argument(
        "--breaker-consecutive",
        type=_non_negative_int,
        default=breaker.consecutive,
        metavar="N",
        help=f"also open the circuit after N failures in a row; 0: only the ratio (default {breaker.consecutive})",
    )
    run.add_argument(
        "--deactivate-after-days",
        type=_non_negative_float,
        default=deactivate_days,
        metavar="DAYS",
        help="disable a hook, with the reason, once its endpoint has failed without a single success for this"
        f" long; 0: never (default {deactivate_days:g})",
    )
    run.add_argument(
        "--render-workers",
        type=_positive_int,
        default=POOL_DEFAULTS.workers,
        metavar="N",
        help="worker processes per third-party plugin distribution rendering its payload formats"
        f" (default {POOL_DEFAULTS.workers})",
    )
    run.add_argument(
        "--render-memory-limit",
        type=_positive_int,
        default=POOL_DEFAULTS.memory_limit // 2**20,
        metavar="MIB",
        help="address space each render worker may use; a render past it fails"
        f" (default {POOL_DEFAULTS.memory_limit // 2**20})",
    )
    run.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        type=_host_port,
        help="serve Prometheus metrics over HTTP on this address, port 0 picks a free one; with --processes N"
        " the processes serve on PORT to PORT+N-1 (default: no metrics)",
    )
    run.add_argument(
        "--no-metrics-hook-labels",
        action="store_true",
        help="leave hook names out of the metrics' labels, for servers with very many hooks",
    )
    run.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="trace every delivery attempt with OpenTelemetry and export the spans over OTLP/HTTP to this URL"
        " (for example http://127.0.0.1:4318/v1/traces; needs tidings-server[otel]; default: no tracing)",
    )
    run.add_argument(
        "--role",
        choices=cluster.ROLES,
        default="all",
        help="all: serve gRPC and deliver; api: serve gRPC, deliver nothing; worker: deliver, serving only"
        " gRPC health (default all)",
    )
    run.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N server processes sharing the listen port (SO_REUSEPORT), restarted if one dies;"
        " needs a store several processes can share, such as PostgreSQL (default 1)",
    )
    run.add_argument(
        "--no-auth",
        action="store_true",
        help="let every caller do everything, unauthenticated: for a local server on loopback only, and said"
        " loudly at start (default: callers need a bearer token; see `tidings-server tokens`)",
    )
    run.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # set for --processes' children
    run.add_argument(
        "--disable-plugin", action="append", default=[], metavar="NAME", help="do not load this plugin; repeatable"
    )
    run.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default info)"
    )

    status = commands.add_parser(
        "status",
        help="what a store's servers are doing: nodes, uptime, due deliveries, the last minute, failing hooks",
        description="Read, from the store the servers share (a SQLite file read-only beside its server),"
        " what an operator checks first: the live nodes (heard from within"
        f" {cluster.ALIVE_BEATS} heartbeats) with their role, host, pid, uptime, last heartbeat and the"
        " attempts they had in flight at it; the deliveries due now and how long the oldest has waited;"
        " the last minute's deliveries by outcome; and the hooks whose last attempts failed.",
    )
    status.add_argument("--store", default=DEFAULT_STORE, metavar="URL", help=f"(default {DEFAULT_STORE})")
    status.add_argument(
        "--delivery-lease",
        type=_positive_float,
        default=ENGINE_DEFAULTS.lease.total_seconds(),
        metavar="SECONDS",
        help="the lease the nodes run with, which sets their heartbeat period"
        f" (default {ENGINE_DEFAULTS.lease.total_seconds():g})",
    )
    status.add_argument(
        "--failing",
        type=_non_negative_int,
        default=5,
        metavar="N",
        help="show the N hooks with the most failed attempts in a row (default 5; 0: none)",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    config = commands.add_parser(
        "config",
        help="print the effective settings of serve",
        description="Print the settings `tidings-server serve` would run with, as a TOML file with secrets"
        " masked and each value's source: the command line, the environment, the --config file or the default."
        " Takes the same options as serve.",
    )
    config.add_argument("action", choices=["show"])
    config.add_argument("serve_args", nargs=argparse.REMAINDER, metavar="SERVE OPTIONS")
    commands.add_parser(
        "plugins",
        help="list loaded plugins, their distributions and what they provide",
        description="List every plugin in the 'tidings' entry-point group with its distribution and version,"
        " and the payload formats, storage backends and catalog resources loaded from them.",
    )
    secrets_cli.add_commands(commands)
    tokens_cli.add_commands(commands)
    return top


async def _serve_until_signal(config: Config) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config)
            collector.settle()
            print(f"{supervisor.READY}{running.port}", file=sys.stderr, flush=True)
            async for signum in signals:
                if signum == signal.SIGHUP:  # new certificates for new connections; the server goes on
                    running.reload_tls()
                    running.reseal_secrets()  # and a new secrets key, if the key file has one
                    continue
                log.info("stopping", extra={"signal": signal.Signals(signum).name})
                break
            with trio.move_on_after(config.shutdown_grace + 5):
                await running.stop(config.shutdown_grace)
            nursery.cancel_scope.cancel()
    log.info("stopped")


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < 10**7:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a positive number below 10000000, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < 10**7:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be a number from 0 to below 10000000, got {text}")
    return value


def _host_port(text: str) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6), the port 0 to 65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    return text


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 1, got {text}")
    return value


def _plugins() -> int:
    try:
        plugins = Plugins.load()
    except PluginError as exc:
        print(f"tidings-server: {exc}", file=sys.stderr)
        return 2
    for info in plugins.infos:
        state = f"FAILED: {info.error}" if info.error else "loaded"
        print(f"{info.name:<12} {info.distribution} {info.version}  {state}")
    print()
    print("payload formats:", ", ".join(sorted(plugins.payload_formats)) or "none")
    print("storage backends:", ", ".join(f"{s}:" for s in sorted(plugins.storage_backends)) or "none")
    # tidings' own resources (its operational events) select nothing of the product's.
    own = sum(1 for _, name in plugins.catalog.resources if name in operational.RESOURCES)
    mine = f" (and {own} of tidings' own)" if own else ""
    print(f"catalog resources: {len(plugins.catalog.resources) - own}{mine}")
    if len(plugins.catalog.resources) == own:
        print(
            "tidings-server: warning: no resource catalog is installed, so hooks can select no events;"
            " install one (tidings-procore is the Procore catalog) and run this again",
            file=sys.stderr,
        )
    return 1 if any(i.error for i in plugins.infos) else 0


async def _read_status(args: argparse.Namespace) -> status_report.Status:
    if urlsplit(args.store).scheme.lower() == "memory":
        raise ConfigError(
            "--store: a memory: store lives inside the server's process; status reads a store the server"
            " shares (SQLite, PostgreSQL)"
        )
    plugins = Plugins.load()
    url = status_report.read_only_url(args.store)
    backend = plugins.storage_backend_for(url)
    lease = timedelta(seconds=args.delivery_lease)
    try:
        async with backend.open(url) as store:
            return await status_report.read(store, redact(args.store), datetime.now(UTC), lease, args.failing)
    except ValueError as exc:
        raise ConfigError(f"--store: {redact(str(exc))}") from exc


def _status(args: argparse.Namespace) -> int:
    found: status_report.Status | None = None
    try:
        found = trio.run(_read_status, args)
    except* (ConfigError, PluginError) as group:
        for exc in _leaves(group):
            print(f"tidings-server: {exc}", file=sys.stderr)
    if found is None:
        return 2
    if args.json:
        print(status_report.as_json(found))
    else:
        print(status_report.as_text(found, shutil.get_terminal_size().columns))
    return 0


def _tls_files(args: argparse.Namespace) -> TlsFiles | None:
    """The TLS files asked for, or None for plaintext; a key without its certificate (or the
    reverse, or a client CA without both) is refused, naming what is missing."""
    if args.tls_cert is None and args.tls_key is None:
        if args.client_ca is not None:
            raise ConfigError("--client-ca: mutual TLS needs TLS: give --tls-cert and --tls-key too")
        return None
    if args.tls_cert is None or args.tls_key is None:
        given, missing = ("--tls-key", "--tls-cert") if args.tls_cert is None else ("--tls-cert", "--tls-key")
        raise ConfigError(f"{missing}: {given} is given without it; TLS needs both")
    return TlsFiles(args.tls_cert, args.tls_key, args.client_ca)


def _single_process_refusal(store_url: str) -> str | None:
    why = SINGLE_PROCESS_SCHEMES.get(urlsplit(store_url).scheme.lower())
    if why is None:
        return None
    return f"--processes: {why}; run one process on it, or use a postgresql:// store to run several"


def _serve_parser(top: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices["serve"]
            return found
    raise AssertionError("the serve command is missing")


def _parse_serve(top: argparse.ArgumentParser, serve_args: Sequence[str]) -> tuple[argparse.Namespace, str]:
    """Parse ``serve`` options over the --config file and the environment; also the settings shown."""
    serve = _serve_parser(top)
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", type=Path)
    given, _ = early.parse_known_args(serve_args)
    path = given.config or (Path(os.environ[settings.CONFIG_ENV]) if os.environ.get(settings.CONFIG_ENV) else None)
    layered = settings.load(serve, path, os.environ)
    settings.apply(serve, layered)
    args = top.parse_args(["serve", *serve_args])
    settings.settle_lists(args, serve, layered)
    # Any URL may carry a password (the store's, an OTLP collector's): each string is shown without.
    urls = {dest: redact(value) for dest, value in vars(args).items() if isinstance(value, str)}
    return args, settings.show(args, serve, layered, redact=urls)


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = top.parse_args(argv)
    if args.command == "plugins":
        return _plugins()
    if args.command == "secrets":
        return secrets_cli.run(args)
    if args.command == "tokens":
        return tokens_cli.run(args)
    if args.command == "status":
        return _status(args)
    try:
        showing = args.command == "config"
        serve_args = args.serve_args if showing else argv[argv.index("serve") + 1 :]
        args, shown = _parse_serve(top, serve_args)
    except settings.SettingsError as problem:
        print(f"tidings-server: {problem}", file=sys.stderr)
        return 2
    if showing:
        print(shown, end="")
        return 0
    try:
        keys = secrets_cli.key_source(args.secrets_key_file, os.environ.get(ENV_VAR))
    except (ValueError, OSError) as err:
        print(f"tidings-server: --secrets-key-file: {err}", file=sys.stderr)
        return 2
    if keys is not None and args.plaintext_secrets:
        print("tidings-server: --plaintext-secrets: a key is given too; give one or the other", file=sys.stderr)
        return 2
    try:
        tls = _tls_files(args)
    except ConfigError as bad:
        print(f"tidings-server: {bad}", file=sys.stderr)
        return 2
    if args.processes > 1:
        logs.configure(args.log_level)
        refusal = _single_process_refusal(args.store)
        if refusal is None:
            try:
                check_listen(
                    args.listen, auth=not args.no_auth, tls=tls is not None, allow_plaintext=args.allow_plaintext
                )
                load_tls(tls)  # each child checks its files too; a bad one is said once, here
            except ConfigError as bad:
                refusal = str(bad)
        if refusal is not None:
            print(f"tidings-server: {refusal}", file=sys.stderr)
            return 2
        first = int(args.metrics_listen.rpartition(":")[2]) if args.metrics_listen else 0
        if first and first + args.processes - 1 > 65535:  # one metrics port per process
            last = first + args.processes - 1
            print(f"tidings-server: --metrics-listen: {args.processes} processes need ports {first} to {last},"
                  " past 65535", file=sys.stderr)  # fmt: skip
            return 2
        return supervisor.serve_processes(
            serve_args, args.listen, args.processes, args.shutdown_grace, metrics_listen=args.metrics_listen
        )
    node_id = cluster.new_node_id()
    logs.configure(args.log_level, node=node_id)
    config = Config(
        listen=args.listen,
        store_url=args.store,
        allow_http=args.allow_http,
        allow_private_destinations=args.allow_private_destinations,
        allowed_destination_hosts=frozenset(h.lower() for h in args.allow_destination_host),
        shutdown_grace=args.shutdown_grace,
        blocked_plugins=frozenset(args.disable_plugin),
        engine=EngineConfig(
            max_in_flight=args.max_in_flight,
            lease=timedelta(seconds=args.delivery_lease),
            retention=timedelta(days=args.retention_days),
            poison_after=args.poison_after,
            breaker=BreakerConfig(
                ratio=args.breaker_failure_ratio,
                min_attempts=args.breaker_min_attempts,
                window=timedelta(seconds=args.breaker_window),
                consecutive=args.breaker_consecutive,
                deactivate_after=timedelta(days=args.deactivate_after_days) if args.deactivate_after_days else None,
            ),
        ),
        secrets_key=keys,
        plaintext_secrets=args.plaintext_secrets,
        render_pool=PoolConfig(workers=args.render_workers, memory_limit=args.render_memory_limit * 2**20),
        metrics=MetricsConfig(listen=args.metrics_listen, hook_labels=not args.no_metrics_hook_labels),
        tracing=TracingConfig(otlp_endpoint=args.otlp_endpoint),
        role=args.role,
        node_id=node_id,
        reuse_port=args.reuse_port,
        tls=tls,
        allow_plaintext=args.allow_plaintext,
        auth=not args.no_auth,
    )
    code = 0
    try:
        check_listen(config.listen, auth=config.auth, tls=tls is not None, allow_plaintext=config.allow_plaintext)
        if not config.reuse_port:  # a supervised child shares the port its parent holds, by design
            _check_free(config.listen)
        trio.run(_serve_until_signal, config)
    except* (ConfigError, PluginError, ListenError) as group:
        for exc in _leaves(group):
            print(f"tidings-server: {exc}", file=sys.stderr)
        code = 2
    return code


def _check_free(listen: str) -> None:
    """Say plainly that the address is taken, before gRPC logs a bind failure of its own.

    A probe bind with the options gRPC itself uses (SO_REUSEADDR): what fails here would fail
    there. A race with another process taking the port after the probe still ends in gRPC's
    error, reported as a ListenError.
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if port == "0":
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host if host != "localhost" else "127.0.0.1", int(port)))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(f"--listen: cannot listen on {listen}: {exc.strerror}") from None
            raise ConfigError(
                f"--listen: {listen} is already in use (another tidings-server?); pick another address, e.g."
                f" --listen {host}:{int(port) + 1} (with make: make serve LISTEN={host}:{int(port) + 1})"
            ) from None


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


if __name__ == "__main__":
    sys.exit(main())
