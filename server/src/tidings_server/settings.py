"""Layers a TOML file and ``TIDINGS_…`` environment variables under the command line of ``serve``.

Every ``serve`` option can be set in three places: the command line wins, then the environment,
then the file, then the built-in default. The layering is derived from the argparse options
themselves, so an option added to ``serve`` is at once a file key and an environment variable;
nothing here lists options by hand. File keys are the long option names (``allow-http = true``);
environment variables are ``TIDINGS_`` and the option's name in capitals with underscores
(``TIDINGS_ALLOW_HTTP=1``). An unknown file key is an error naming the key and the file: a
misspelt setting must never be silently ignored.
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "TIDINGS_"
# Not TIDINGS_CONFIG: that names the admin CLI's own file (profiles, targets), which an admin
# who also runs a server on the same account has set; the server would then read it as its own.
CONFIG_ENV = "TIDINGS_SERVER_CONFIG"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_SECRET_WORDS = ("key", "token", "secret", "password")


class SettingsError(Exception):
    """A setting in the file or the environment cannot be used; the message names where and why."""


@dataclass(frozen=True, slots=True)
class Option:
    """One ``serve`` option as the file and the environment see it."""

    key: str  # the file key: the long option without its dashes
    env: str
    action: argparse.Action

    @property
    def is_flag(self) -> bool:
        return isinstance(self.action, argparse._StoreTrueAction)

    @property
    def is_list(self) -> bool:
        return isinstance(self.action, argparse._AppendAction)

    @property
    def is_secret(self) -> bool:
        """A value to mask when shown (a path to a key file is not itself a secret, nor is a flag)."""
        path = self.key.endswith("-file") or self.action.type is Path  # --tls-key names a file too
        return any(word in self.key for word in _SECRET_WORDS) and not path and not self.is_flag


def options(command: argparse.ArgumentParser) -> dict[str, Option]:
    """The settable options of ``command`` by file key (help, version, --config and hidden
    options, which the server sets for its own children, excluded)."""
    found: dict[str, Option] = {}
    for action in command._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or isinstance(action, argparse._HelpAction | argparse._VersionAction) or action.dest == "config":
            continue
        if action.help == argparse.SUPPRESS:
            continue
        key = longs[0][2:]
        found[key] = Option(key, ENV_PREFIX + action.dest.upper(), action)
    return found


@dataclass(frozen=True, slots=True)
class Layered:
    """The defaults to give ``command`` (file and environment merged), and where each came from."""

    defaults: dict[str, object]
    sources: dict[str, str]


def load(command: argparse.ArgumentParser, path: Path | None, environ: Mapping[str, str]) -> Layered:
    """Read ``path`` (if any) and ``environ`` into defaults for ``command``'s options."""
    known = options(command)
    defaults: dict[str, object] = {}
    sources: dict[str, str] = {}
    if path is not None:
        for key, raw in _read(path).items():
            option = known.get(key) or known.get(key.replace("_", "-"))
            if option is None:
                raise SettingsError(
                    f"{path}: unknown key {key!r}; the keys are the long options of"
                    " `tidings-server serve --help` without their dashes"
                )
            defaults[option.action.dest] = _from_file(option, raw, f"{path}: {key}")
            sources[option.action.dest] = str(path)
    for option in known.values():
        if option.env in environ:
            defaults[option.action.dest] = _from_env(option, environ[option.env])
            sources[option.action.dest] = option.env
    return Layered(defaults, sources)


def _read(path: Path) -> dict[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config: cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return data


def _convert(option: Option, raw: object, where: str) -> object:
    """One scalar value through the option's own type and choices, as the command line would."""
    action = option.action
    if isinstance(raw, bool | dict | list) or (isinstance(raw, float) and not math.isfinite(raw)):
        raise SettingsError(f"{where}: expected a {'number' if action.type else 'string'}, got {json.dumps(raw)}")
    if not isinstance(raw, str | int | float):
        raise SettingsError(f"{where}: expected a string or a number")
    text = raw if isinstance(raw, str) else repr(raw)
    value: object = text
    if callable(action.type):
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise SettingsError(f"{where}: {exc}") from None
    if action.choices is not None and value not in action.choices:
        allowed = ", ".join(str(c) for c in action.choices)
        raise SettingsError(f"{where}: {text!r} is not one of {allowed}")
    return value


def _from_file(option: Option, raw: object, where: str) -> object:
    if option.is_flag:
        if not isinstance(raw, bool):
            raise SettingsError(f"{where}: expected true or false, got {json.dumps(raw, default=str)}")
        return raw
    if option.is_list:
        items = raw if isinstance(raw, list) else [raw]
        return [_convert(option, item, where) for item in items]
    return _convert(option, raw, where)


def _from_env(option: Option, text: str) -> object:
    if option.is_flag:
        word = text.strip().lower()
        if word not in _TRUE | _FALSE:
            raise SettingsError(f"{option.env}: expected 1 or 0 (true or false), got {text!r}")
        return word in _TRUE
    if option.is_list:
        return [_convert(option, item.strip(), option.env) for item in text.split(",") if item.strip()]
    return _convert(option, text, option.env)


def apply(command: argparse.ArgumentParser, layered: Layered) -> None:
    """Make the layered values ``command``'s defaults, so what the command line says still wins."""
    command.set_defaults(**layered.defaults)


def settle_lists(args: argparse.Namespace, command: argparse.ArgumentParser, layered: Layered) -> None:
    """argparse appends command-line items to a list default; the command line replaces it instead."""
    for option in options(command).values():
        dest = option.action.dest
        base = layered.defaults.get(dest)
        got = getattr(args, dest, None)
        if option.is_list and isinstance(base, list) and isinstance(got, list) and len(got) > len(base):
            setattr(args, dest, got[len(base) :])


def show(
    args: argparse.Namespace,
    command: argparse.ArgumentParser,
    layered: Layered,
    redact: Mapping[str, object] | None = None,
) -> str:
    """The effective settings as a TOML file, secrets masked, each with where it came from."""
    lines = ["# tidings-server serve: effective settings (command line > environment > file > default)"]
    for key, option in sorted(options(command).items()):
        dest = option.action.dest
        value = getattr(args, dest, None)
        source = layered.sources.get(dest, "default")
        if value != layered.defaults.get(dest, option.action.default):
            source = "command line"
        shown: object = redact.get(dest, value) if redact else value
        if option.is_secret and value:
            shown = "••••••"
        if shown is None:
            lines.append(f"# {key} is not set ({source})")
            continue
        lines.append(f"{key} = {_toml(shown)}  # {source}")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
