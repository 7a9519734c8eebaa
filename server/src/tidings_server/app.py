"""Assembles a server from its configuration: plugins, the store, the core and the gRPC adapter."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import trio

from tidings_server import __version__, cluster, operational
from tidings_server.delivery.clock import Clock
from tidings_server.delivery.engine import USER_AGENT, DeliveryEngine, EngineConfig
from tidings_server.delivery.http import Sender
from tidings_server.delivery.render_pool import PoolConfig, RenderPool
from tidings_server.domain.catalog import CatalogEntry, CatalogService, FormatInfo
from tidings_server.domain.destinations import DestinationPolicy
from tidings_server.domain.events import EventService
from tidings_server.domain.history import HistoryService
from tidings_server.domain.hooks import HookService, Lookup
from tidings_server.domain.model import Scope
from tidings_server.domain.ports import Notice, Store
from tidings_server.domain.pulse import Pulse
from tidings_server.domain.sealing import Keyring, new_key
from tidings_server.domain.templates import TemplateService
from tidings_server.domain.tokens import TokenService
from tidings_server.grpc_api.deliveries import WatchSettings
from tidings_server.grpc_api.server import Core, GrpcServer
from tidings_server.keys import ENV_VAR, KeySource
from tidings_server.plugins.manager import IN_PROCESS, PluginError, PluginInfo, Plugins
from tidings_server.store_health import HealthSettings, watch_store
from tidings_server.stores.sealed import Resealing, SealedStore, audit
from tidings_server.telemetry.metrics import Metrics, MetricsConfig, sample_queue, serve_metrics
from tidings_server.telemetry.store import observed
from tidings_server.telemetry.tracing import TracingConfig, TracingUnavailable, tracer
from tidings_server.tls import Certificates, TlsFileError, TlsFiles

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_STORE = "sqlite:///tidings.sqlite3"
RESOLVE_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``tidings-server serve`` can be told; the defaults are the safe ones."""

    listen: str = DEFAULT_LISTEN
    store_url: str = DEFAULT_STORE
    allow_http: bool = False
    allow_private_destinations: bool = False
    allowed_destination_hosts: frozenset[str] = field(default_factory=frozenset)
    shutdown_grace: float = 10.0
    blocked_plugins: frozenset[str] = field(default_factory=frozenset)
    engine: EngineConfig = field(default_factory=EngineConfig)
    render_pool: PoolConfig = field(default_factory=PoolConfig)
    watch: WatchSettings = field(default_factory=WatchSettings)
    # The keys hooks' secrets are sealed with at rest; None: see ``seal_store``.
    secrets_key: KeySource | None = None
    plaintext_secrets: bool = False
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    role: str = "all"  # all | api (gRPC, no delivery) | worker (delivery, gRPC health only)
    node_id: str = ""  # this process in the cluster's node list and logs; generated when empty
    reuse_port: bool = False  # share the listen port with sibling processes (SO_REUSEPORT)
    store_health: HealthSettings = field(default_factory=HealthSettings)  # gRPC health follows the store
    tls: TlsFiles | None = None  # serve TLS (mutual with a client CA); None: plaintext
    allow_plaintext: bool = False  # plaintext on a non-loopback address, said on purpose
    auth: bool = True  # callers need a bearer token; False (--no-auth) is allowed on loopback only

    @property
    def destination_policy(self) -> DestinationPolicy:
        return DestinationPolicy(self.allow_http, self.allow_private_destinations, self.allowed_destination_hosts)


class ConfigError(Exception):
    """The configuration cannot work; the message says which option and why."""


def check_listen(listen: str, *, auth: bool = True, tls: bool = False, allow_plaintext: bool = False) -> bool:
    """Whether ``listen`` is a loopback address; refuses what must not be served.

    Off loopback, callers must be authenticated (no ``--no-auth``) and the transport encrypted
    (TLS), unless plaintext is asked for by name with ``allow_plaintext``.
    """
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen: {listen!r} is not HOST:PORT")
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        loopback = bool(host) and ipaddress.ip_address(host).is_loopback  # ":PORT" is every address
    except ValueError:
        raise ConfigError(f"--listen: {host!r} is not an IP address or localhost") from None
    if loopback:
        return True
    shown = host or "every address"
    if not auth:
        raise ConfigError(
            f"--listen: {shown} is not a loopback address; --no-auth serves the control plane on loopback only"
        )
    if not tls and not allow_plaintext:
        raise ConfigError(
            f"--listen: {shown} is not a loopback address; serve it with TLS (--tls-cert and --tls-key), or pass"
            " --allow-plaintext to serve it unencrypted on purpose"
        )
    return False


def plaintext_warning(loopback: bool, *, tls: bool) -> str | None:
    """What to warn of at start: plaintext off loopback (allowed by ``--allow-plaintext``)."""
    if loopback or tls:
        return None
    return (
        "serving the control plane unencrypted on a non-loopback address (--allow-plaintext):"
        " callers' tokens travel in the clear"
    )


def load_tls(files: TlsFiles | None) -> Certificates | None:
    """The checked TLS material, or a ``ConfigError`` naming the option and the file."""
    if files is None:
        return None
    try:
        return Certificates(files)
    except TlsFileError as exc:
        raise ConfigError(str(exc)) from None


NO_AUTH_WARNING = (
    "AUTHENTICATION IS OFF (--no-auth): every caller on this machine may do everything. To turn it on,"
    " create an owner token with `tidings-server tokens create --store URL --role owner --name NAME`"
    " (the server stopped, for a SQLite store), restart without --no-auth, and call with"
    " `tidings --token …` or TIDINGS_TOKEN"
)


async def resolve(host: str) -> list[str]:
    """The addresses a destination host resolves to now; [] if it does not resolve in time."""
    with trio.move_on_after(RESOLVE_TIMEOUT):
        try:
            infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        return sorted({str(info[4][0]) for info in infos})
    return []


def redact(text: str) -> str:
    """Hide the password part of any URL in ``text`` (store URLs may carry credentials)."""
    return re.sub(r"(//[^/:@\s]*):[^@/\s]*@", r"\1:•••@", text)


def build_core(
    store: Store,
    plugins: Plugins,
    config: Config,
    clock: Clock,
    engine: DeliveryEngine,
    pulse: Pulse,
    metrics: Metrics | None = None,
) -> Core:
    def resources(scope: Scope, payload_format: str | None) -> list[CatalogEntry]:
        return [
            CatalogEntry(r, plugins.catalog.providers[(r.scope, r.name)])
            for r in plugins.catalog.list(scope, payload_format)
        ]

    formats = [
        FormatInfo(name, fmt.description, fmt.content_type, origin.distribution, origin.version)
        for name, fmt in plugins.payload_formats.items()
        for origin in [plugins.format_origin[name]]
    ]

    def changed() -> None:  # a write that may make deliveries due and that watchers want to see
        engine.wake()
        pulse.fire()

    hooks = HookService(
        store,
        Lookup(list(plugins.payload_formats), plugins.catalog.get),
        config.destination_policy,
        resolve,
        clock.now,
        on_change=changed,
    )
    templates = TemplateService(store, hooks, clock.now, on_change=changed)
    apply_template = operational.telling_template_trouble(
        templates.apply_on_project_created, engine.announcer, clock.now
    )
    events = EventService(store, plugins.catalog.get, clock.now, on_published=changed, apply_template=apply_template)
    engine.announcer.connect(events.publish)
    history = HistoryService(
        store,
        clock.now,
        pulse,
        engine.render,
        engine.probe,
        retention=config.engine.retention,
        on_change=changed,
        circuit=engine.throttle.breakers.state,
    )
    return Core(
        hooks=hooks,
        catalog=CatalogService(resources, formats),
        events=events,
        history=history,
        tokens=TokenService(store, clock.now),
        watch=config.watch,
        auth=config.auth,
        templates=templates,
        observe_publish=metrics.observe_publish if metrics is not None else None,
    )


BUNDLED_DISTRIBUTIONS = frozenset({"tidings-server", "tidings-procore"})


def bundled_formats(plugins: Plugins) -> frozenset[str]:
    """Formats shipped with the server itself, which render on the engine's thread; every other
    installed plugin's format renders in a worker process (``pooled_formats``)."""
    return frozenset(n for n, origin in plugins.format_origin.items() if origin.distribution in BUNDLED_DISTRIBUTIONS)


def pooled_formats(plugins: Plugins) -> dict[str, tuple[str, list[str]]]:
    """The formats of installed third-party distributions, each with its distribution and the
    plugins a worker of that distribution loads (its entry points that loaded here)."""
    installed = {i.distribution for i in plugins.infos if i.error is None and i.distribution != IN_PROCESS}
    loaded = {d: [i.name for i in plugins.infos if i.distribution == d and i.error is None] for d in installed}
    return {
        name: (origin.distribution, loaded[origin.distribution])
        for name, origin in plugins.format_origin.items()
        if origin.distribution in installed and origin.distribution not in BUNDLED_DISTRIBUTIONS
    }


async def check_formats_in_use(store: Store, plugins: Plugins, disabled: frozenset[str] = frozenset()) -> None:
    """Refuse to start when stored hooks use a payload format that no loaded plugin provides,
    unless plugins were disabled on purpose (``--disable-plugin``).

    A plugin that failed to import is only fatal here: the server runs without it as long as no
    hook needs it, and otherwise says which format is missing, which hooks need it, which broken
    plugin may be its provider, and how to fix it. A disabled plugin is the operator's choice
    (a plugin that misbehaves, taken out until it is fixed): the server starts, and those hooks'
    deliveries are retried on their schedule until the format is back, so none is lost unless
    the hook's retry window ends first.
    """
    missing = {
        name: use for name, use in (await store.payload_formats_in_use()).items() if name not in plugins.payload_formats
    }
    if not missing:
        return
    needed = ", ".join(
        f"{name!r} ({count} hook{'s' if count > 1 else ''}, first {first})"
        for name, (count, first) in sorted(missing.items())
    )
    if disabled:
        log.warning(
            "stored hooks use payload formats no loaded plugin provides: %s; with plugins disabled (%s), their"
            " deliveries are retried on each hook's schedule until the format is back",
            needed,
            ", ".join(sorted(disabled)),
        )
        return
    broken = [i for i in plugins.infos if i.error]
    suspects = [i for i in broken if any(_may_provide(i, name) for name in missing)]
    if suspects:
        why = "; ".join(f"plugin {i.name} ({i.distribution} {i.version}) failed to load: {i.error}" for i in suspects)
        flags = " ".join(f"--disable-plugin {i.name}" for i in suspects)
        fix = f"repair it, or start with {flags} to run without it (those hooks' deliveries then wait for it)"
    else:
        why = "no installed plugin provides it" + (
            " (failed to load, none of them its likely provider: " + ", ".join(i.name for i in broken) + ")"
            if broken
            else ""
        )
        fix = "install the distribution that provides it"
    raise PluginError(
        f"stored hooks use payload formats no loaded plugin provides: {needed}; {why}. To start, {fix},"
        " or delete those hooks"
    )


async def seal_store(store: Store, config: Config, scheme: str) -> SealedStore:
    """The store behind the sealing decorator, after checking that every stored secret opens.

    Without a key: a ``memory:`` store (nothing at rest) seals under a key made for this run;
    any other needs ``plaintext_secrets`` said out loud, or the server refuses to start, so
    secrets are never written unencrypted by accident.
    """
    keys = config.secrets_key
    if keys is None:
        if scheme == "memory":
            keys = KeySource(Keyring([new_key()]))
        elif config.plaintext_secrets:
            keys = KeySource(Keyring())
            log.warning("hooks' secrets are stored unencrypted (--plaintext-secrets): for development only")
        else:
            raise ConfigError(
                "--secrets-key-file: no key to encrypt the secrets this store keeps; create one with"
                " `tidings-server secrets init-key PATH` and pass --secrets-key-file PATH (or set"
                f" {ENV_VAR}), or pass --plaintext-secrets to keep them unencrypted (development only)"
            )
    sealed = SealedStore(store, keys)
    found = await audit(sealed)
    if problems := found.not_opening:  # hooks' secrets, and templates' Authorization headers
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"--secrets-key-file: stored secrets do not open with this keyring: {problems[0]}{more}")
    if found.plaintext and keys.keyring.keys:
        log.warning(
            "hooks keep secrets unencrypted from before encryption at rest; each is encrypted when next written,"
            " `tidings-server secrets rotate-key` encrypts them all",
            extra={"hooks": found.plaintext},
        )
    return sealed


async def decorate_store(
    store: Store, config: Config, scheme: str, metrics: Metrics | None
) -> tuple[Store, SealedStore]:
    """The store as the rest of the server sees it, and its sealing layer (which SIGHUP has
    re-seal the store); the one place its wrappers are put on.

    Sealing goes innermost, next to the backend, so nothing above it ever sees a sealed secret;
    metrics, when they are served, go outermost, so they time each call as its caller waits for it.
    """
    sealed = await seal_store(store, config, scheme)
    return (sealed if metrics is None else observed(sealed, metrics)), sealed


def _may_provide(info: PluginInfo, format_name: str) -> bool:
    """Whether a plugin that failed to load looks like the provider of ``format_name``: formats
    are named ``vendor.…`` and plugins and distributions usually carry the vendor's name."""
    vendor = format_name.split(".", 1)[0].lower().replace("_", "-")
    names = (info.name.lower().replace("_", "-"), info.distribution.lower())
    return any(vendor in name.split("-") or name.startswith(vendor) for name in names)


@dataclass(slots=True)
class Running:
    """A started server: its port, its node id, and how to stop it gracefully."""

    port: int
    grpc: GrpcServer
    engine: DeliveryEngine
    pulse: Pulse
    metrics_port: int | None = None
    sidecars: trio.CancelScope = field(default_factory=trio.CancelScope)  # tasks that end with the server
    node_id: str = ""
    delivering: bool = True  # False for role api: the engine only renders and probes
    certificates: Certificates | None = None  # the TLS material served; None: plaintext
    resealing: Resealing | None = None  # re-seals the store under the key file's newest key

    def reseal_secrets(self) -> None:
        """Read the key file again and re-seal, in the background, every secret not under its
        newest key (SIGHUP): how ``secrets rotate-key`` rotates a SQLite file this server owns."""
        if self.resealing is not None:
            self.resealing.ask()

    def reload_tls(self) -> bool:
        """Read the TLS files again (SIGHUP): new connections get them, open ones stay as they are.
        A bad file is logged and the certificate in use stays; False then, or without TLS."""
        if self.certificates is None:
            log.info("nothing to reload: serving plaintext, without TLS files")
            return False
        return self.certificates.reload()

    async def stop(self, grace: float) -> None:
        """Stop taking calls and stop claiming at once; in-flight work gets ``grace`` seconds.
        Watch streams end at once (UNAVAILABLE): they never finish by themselves."""
        self.pulse.close()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.grpc.stop, grace)
            if self.delivering:
                nursery.start_soon(self.engine.drain, grace)
        self.sidecars.cancel()


LEAVE_TIMEOUT = 5.0
"""How long a stopping node waits for the store to forget it (a store that is away is not waited for)."""


async def serve(
    config: Config, *, plugins: Plugins | None = None, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a server until it is stopped; ``await nursery.start(serve, config)`` returns ``Running``."""
    loopback = check_listen(
        config.listen, auth=config.auth, tls=config.tls is not None, allow_plaintext=config.allow_plaintext
    )
    certificates = load_tls(config.tls)
    if warning := plaintext_warning(loopback, tls=config.tls is not None):
        log.warning(warning, extra={"listen": config.listen})
    if config.role not in cluster.ROLES:
        raise ConfigError(f"--role: {config.role!r} is not one of {', '.join(cluster.ROLES)}")
    plugins = plugins or Plugins.load(blocked=config.blocked_plugins)
    backend = plugins.storage_backend_for(config.store_url)
    node = cluster.Node(config.node_id or cluster.new_node_id(), config.role)
    delivering = config.role != "api"
    async with contextlib.AsyncExitStack() as stack:
        try:
            store = await stack.enter_async_context(backend.open(config.store_url))
        except ValueError as exc:
            raise ConfigError(f"--store: {redact(str(exc))}") from exc
        metrics = Metrics(hook_labels=config.metrics.hook_labels) if config.metrics.listen else None
        store, sealed = await decorate_store(store, config, backend.scheme, metrics)
        resealing = Resealing(sealed)
        await check_formats_in_use(store, plugins, config.blocked_plugins)
        clock = Clock()
        # Keep as many idle connections as attempts can be in flight: a busy hook reuses its
        # connections instead of closing and reopening them between attempts.
        in_flight = config.engine.max_in_flight
        sender = await stack.enter_async_context(
            Sender(
                config.destination_policy,
                USER_AGENT,
                pool_idle_per_origin=in_flight,
                pool_idle_total=in_flight,
            )
        )
        pool = await stack.enter_async_context(RenderPool(pooled_formats(plugins), config.render_pool))
        pulse = Pulse()
        attempt_tracer = None
        if config.tracing.enabled:
            try:
                attempt_tracer = tracer(config.tracing, __version__)
            except TracingUnavailable as exc:
                raise ConfigError(f"--otlp-endpoint: {exc}") from None
            stack.callback(attempt_tracer.close)
        engine = DeliveryEngine(
            store,
            plugins.payload_formats,
            sender,
            clock,
            config.engine,
            on_recorded=pulse.fire,
            format_plugins={name: origin.plugin for name, origin in plugins.format_origin.items()},
            inline_formats=bundled_formats(plugins),
            render_pool=pool,
            tracer=attempt_tracer,
            node_id=node.node_id,
        )
        core = build_core(store, plugins, config, clock, engine, pulse, metrics)
        grpc_server = GrpcServer(
            core if config.role != "worker" else None,
            config.listen,
            reuse_port=config.reuse_port,
            certificates=certificates,
        )
        sidecars = trio.CancelScope()

        async def run_sidecars(
            tasks: list[Callable[[], Awaitable[None]]], *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            with sidecars:  # a scope is entered once: one nursery holds them all
                async with trio.open_nursery() as side:
                    for task in tasks:
                        side.start_soon(task)
                    task_status.started()

        def heard(notice: Notice) -> None:  # another node (or this one) wrote to the store
            if notice is Notice.DUE:
                engine.wake()
            else:
                pulse.fire()

        await store.register_node(node.info(clock.now()))
        try:
            async with trio.open_nursery() as nursery:
                side: list[Callable[[], Awaitable[None]]] = []
                metrics_port = None
                if metrics is not None and config.metrics.listen is not None:
                    metrics.read_gauges(
                        in_flight=lambda: engine.in_flight,
                        watch_streams=lambda: grpc_server.deliveries.active_watches if grpc_server.deliveries else 0,
                        circuits_open=engine.throttle.breakers.open_count,
                        # Scrapes run on their own thread, where trio's clock cannot be read.
                        rate_limited_hooks=lambda: engine.throttle.rate_limited_hooks(datetime.now(UTC)),
                    )
                    try:
                        endpoint = serve_metrics(metrics, config.metrics.listen)
                    except OSError as exc:
                        raise ConfigError(
                            f"--metrics-listen: cannot listen on {config.metrics.listen}: {exc}"
                        ) from None
                    stack.callback(endpoint.close)
                    metrics_port = endpoint.port
                    side.append(partial(sample_queue, metrics, store, clock, config.metrics.queue_sample_every))
                    log.info("metrics serving", extra={"listen": config.metrics.listen, "port": metrics_port})
                side.append(partial(store.listen, heard))
                side.append(partial(watch_store, store, grpc_server.set_serving, config.store_health))
                side.append(pool.warm)
                side.append(resealing.run)
                if not delivering:  # no engine to heartbeat: the node still says it is alive
                    side.append(partial(cluster.beat, store, node.node_id, clock, config.engine.lease, lambda: 0))
                await nursery.start(run_sidecars, side)
                if delivering:
                    await nursery.start(engine.run)
                port = await nursery.start(grpc_server.run)
                if not config.auth:  # said once serving, not before a refusal to start
                    log.warning(NO_AUTH_WARNING, extra={"listen": config.listen})
                log.info(
                    "tidings serving",
                    extra={"port": port, "store": backend.scheme, "node": node.node_id, "role": config.role},
                )
                task_status.started(
                    Running(
                        port,
                        grpc_server,
                        engine,
                        pulse,
                        metrics_port,
                        sidecars,
                        node.node_id,
                        delivering,
                        certificates,
                        resealing,
                    )
                )
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT):
                try:
                    await store.remove_node(node.node_id)
                except Exception as exc:  # its entry ages out of the live list instead
                    log.warning("could not leave the cluster", extra={"node": node.node_id, "error": str(exc)})
