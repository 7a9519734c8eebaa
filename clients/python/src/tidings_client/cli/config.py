"""Profiles from the config file, so an admin names a server once instead of on every command.

The file is TOML (``$TIDINGS_CONFIG``, else ``$XDG_CONFIG_HOME/tidings/config.toml``, else
``~/.config/tidings/config.toml``)::

    default_profile = "local"

    [profiles.local]
    target = "127.0.0.1:50051"
    parent = "companies/8/projects/6778"

    [profiles.prod]
    target = "tidings.example.com:443"
    tls = true
    ca_cert = "/etc/tidings/ca.pem"
    token = "…"

A setting given on the command line wins over its environment variable, which wins over the
profile, which wins over the built-in default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import click

from tidings_client.options import DEFAULT_TARGET, DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Profile:
    target: str | None = None
    token: str | None = None
    tls: bool | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None
    timeout: float | None = None
    # The default parent (hook, project or company) of commands that take one.
    parent: str | None = None


@dataclass(frozen=True)
class Settings:
    """What one invocation uses, after flags, environment, profile and defaults are combined."""

    target: str = DEFAULT_TARGET
    token: str | None = None
    tls: bool | None = None  # None: on when certificates are given
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    parent: str | None = None
    profile: str | None = None
    config_path: str | None = None


class ConfigError(click.UsageError):
    """A config file or profile that cannot be used: a usage error (exit 2)."""


def default_path() -> Path:
    if env := os.environ.get("TIDINGS_CONFIG"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tidings" / "config.toml"


_TYPES: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "token": (str,),
    "tls": (bool,),
    "ca_cert": (str,),
    "client_cert": (str,),
    "client_key": (str,),
    "tls_server_name": (str,),
    "timeout": (int, float),
    "parent": (str,),
}


def load_profile(path: Path, name: str | None, *, explicit_path: bool) -> tuple[str | None, Profile]:
    """The named profile (or the file's default one). A missing file is fine unless asked for."""
    if not path.exists():
        if explicit_path or name:
            raise ConfigError(f"config file {path} does not exist" + (f" (profile {name!r} asked for)" if name else ""))
        return None, Profile()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    unknown_top = set(data) - {"default_profile", "profiles"}
    if unknown_top:
        raise ConfigError(
            f"{path}: unknown setting {sorted(unknown_top)[0]!r}; expected default_profile or [profiles.NAME]"
        )
    profiles = data.get("profiles", {})
    chosen = name or data.get("default_profile")
    if chosen is None:
        return None, Profile()
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{path}: no profile {chosen!r} (profiles: {known})")
    values = profiles[chosen]
    for key, value in values.items():
        if key not in _TYPES:
            raise ConfigError(
                f"{path}: profile {chosen!r}: unknown setting {key!r}; expected one of {', '.join(_TYPES)}"
            )
        if not isinstance(value, _TYPES[key]) or (isinstance(value, bool) and bool not in _TYPES[key]):
            raise ConfigError(f"{path}: profile {chosen!r}: {key} has the wrong type")
    return chosen, Profile(**{f.name: values.get(f.name) for f in fields(Profile)})


def resolve(flags: dict[str, object], config: Path | None, profile_name: str | None, *, must_exist: bool) -> Settings:
    """Combine command-line/environment values (``flags``; None when not given) with the profile."""
    path = config or default_path()
    chosen, profile = load_profile(path, profile_name, explicit_path=must_exist)
    merged: dict[str, object] = {}
    for f in fields(Profile):
        given = flags.get(f.name)
        value = given if given is not None else getattr(profile, f.name)
        if value is not None:
            merged[f.name] = value
    settings = Settings(**merged, profile=chosen, config_path=str(path))  # type: ignore[arg-type]
    if (settings.client_cert is None) != (settings.client_key is None):
        raise ConfigError("--client-cert and --client-key go together")
    return settings
