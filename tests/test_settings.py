"""``serve`` settings from a TOML file and the environment, under the command line, as an operator uses them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.harness import Api
from tidings_server import cli, settings
from tidings_server.keys import init_key

BIN = Path(sys.executable).parent / "tidings-server"
EXAMPLE = Path(__file__).parent.parent / "docs" / "tidings-server.example.toml"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(settings.ENV_PREFIX)}
    return subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}, check=False
    )


def shown(output: str) -> dict[str, tuple[str, str]]:
    """``config show`` output as key -> (value text, source)."""
    found = {}
    for line in output.splitlines():
        m = re.fullmatch(r"(\S+) = (.*)  # (.*)", line)
        if m:
            found[m[1]] = (m[2], m[3])
    return found


def test_the_example_file_names_every_option_with_its_default() -> None:
    serve = cli._serve_parser(cli.parser())
    text = EXAMPLE.read_text(encoding="utf-8")
    example = tomllib.loads(text)
    unset = {k for k, option in settings.options(serve).items() if option.action.default is None}
    keys = set(settings.options(serve))
    assert set(example) == keys - unset, "docs/tidings-server.example.toml must set every serve option, and only those"
    for key in unset:  # an option that is off unless given is shown commented out, with an example value
        assert re.search(rf"^# {re.escape(key)} = ", text, re.MULTILINE), f"{key} is missing from the example"
    result = run("config", "show", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    defaults = shown(run("config", "show").stdout)
    for key, (value, source) in shown(result.stdout).items():
        assert source == str(EXAMPLE)
        assert value == defaults[key][0], f"{key}: the example says {value}, the default is {defaults[key][0]}"


def test_the_command_line_beats_the_environment_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text(
        'listen = "127.0.0.1:6000"\nmax-in-flight = 100\nshutdown_grace = 3\ndisable-plugin = ["slack"]\n'
        "allow-http = true\n",
        encoding="utf-8",
    )
    result = run(
        "config",
        "show",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:7000",
        "--disable-plugin",
        "other",
        env={"TIDINGS_MAX_IN_FLIGHT": "200", "TIDINGS_SHUTDOWN_GRACE": "4"},
    )
    assert result.returncode == 0, result.stderr
    got = shown(result.stdout)
    assert got["listen"] == ('"127.0.0.1:7000"', "command line")
    assert got["max-in-flight"] == ("200", "TIDINGS_MAX_IN_FLIGHT")
    assert got["shutdown-grace"] == ("4.0", "TIDINGS_SHUTDOWN_GRACE")
    assert got["disable-plugin"] == ('["other"]', "command line"), "a list on the command line replaces the file's"
    assert got["allow-http"] == ("true", str(config))
    assert got["log-level"] == ('"info"', "default")


def test_the_config_file_may_come_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text("retention-days = 7\n", encoding="utf-8")
    got = shown(run("config", "show", env={settings.CONFIG_ENV: str(config)}).stdout)
    assert got["retention-days"] == ("7.0", str(config))


def test_the_admin_clis_config_variable_is_not_the_servers(tmp_path: Path) -> None:
    cli_config = tmp_path / "cli.toml"  # a `tidings` profile file, not a server's settings
    cli_config.write_text('[profiles.prod]\ntarget = "tidings.internal:443"\n', encoding="utf-8")
    result = run("config", "show", env={"TIDINGS_CONFIG": str(cli_config)})
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout)["retention-days"][1] == "default"
    assert settings.CONFIG_ENV == "TIDINGS_SERVER_CONFIG"


def test_a_password_in_a_url_is_never_shown(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    config.write_text('otlp-endpoint = "https://tidings:s3cret@otel.internal:4318/v1/traces"\n', encoding="utf-8")
    result = run(
        "config",
        "show",
        "--config",
        str(config),
        env={"TIDINGS_STORE": "postgresql://tidings:hunter2@db.internal/tidings"},
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert "s3cret" not in result.stdout
    got = shown(result.stdout)
    assert got["store"] == ('"postgresql://tidings:•••@db.internal/tidings"', "TIDINGS_STORE")
    assert got["otlp-endpoint"] == ('"https://tidings:•••@otel.internal:4318/v1/traces"', str(config))


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("bogus = 1\n", {}, "{config}: unknown key 'bogus'"),
        ("listen = [1]\n", {}, "{config}: listen: expected a string, got [1]"),
        ('max-in-flight = "many"\n', {}, "{config}: max-in-flight: invalid literal for int()"),
        ("max-in-flight = 0\n", {}, "{config}: max-in-flight: must be positive, got 0"),
        ('allow-http = "yes"\n', {}, '{config}: allow-http: expected true or false, got "yes"'),
        ('log-level = "loud"\n', {}, "{config}: log-level: 'loud' is not one of debug, info, warning, error"),
        ("listen = \n", {}, "{config}: not valid TOML"),
        (
            'metrics-listen = "9100"\n',
            {},
            "{config}: metrics-listen: expected HOST:PORT with a port from 0 to 65535, got '9100'",
        ),
        (
            "",
            {"TIDINGS_METRICS_LISTEN": "127.0.0.1:99999"},
            "TIDINGS_METRICS_LISTEN: expected HOST:PORT with a port from 0 to 65535, got '127.0.0.1:99999'",
        ),
        ("", {"TIDINGS_ALLOW_HTTP": "maybe"}, "TIDINGS_ALLOW_HTTP: expected 1 or 0 (true or false), got 'maybe'"),
        ("", {"TIDINGS_RETENTION_DAYS": "-1"}, "TIDINGS_RETENTION_DAYS: must be a positive number"),
    ],
)
def test_a_bad_setting_is_one_line_naming_where_and_what(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(content, encoding="utf-8")
    for command in (["config", "show"], ["serve"]):
        result = run(*command, "--config", str(config), env=env)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("tidings-server: " + message.format(config=config)), lines[0]


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert f"cannot read {tmp_path / 'nope.toml'}" in result.stderr


def test_a_server_runs_from_its_config_file(tmp_path: Path) -> None:
    config = tmp_path / "server.toml"
    init_key(tmp_path / "secrets.key")
    config.write_text(
        f'listen = "127.0.0.1:0"\nstore = "sqlite:///{tmp_path / "db.sqlite3"}"\nallow-http = true\n'
        f'secrets-key-file = "{tmp_path / "secrets.key"}"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(BIN), "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        port = None
        for line in proc.stderr:
            m = re.search(r"listening on port (\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port is not None, "the server did not start"
        api = Api.connect(port)
        api.channel.close()
        assert (tmp_path / "db.sqlite3").exists(), "the store named in the file is the one opened"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


def test_processes_need_a_metrics_port_each_within_range() -> None:
    result = run(
        "serve", "--processes", "3", "--metrics-listen", "127.0.0.1:65534", "--store", "postgresql://127.0.0.1/x"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "tidings-server: --metrics-listen: 3 processes need ports 65534 to 65536, past 65535"
    ), result.stderr
