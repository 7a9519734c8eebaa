"""The entry point: assemble the commands, run one, and turn every failure into one line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import grpc
from rich.console import Console
from rich.markup import escape

from tidings_client.cli.app import CONTEXT_SETTINGS, Declined, Env, root
from tidings_client.cli.catalog import catalog
from tidings_client.cli.deliveries import deliveries
from tidings_client.cli.events import events
from tidings_client.cli.hooks import hooks
from tidings_client.cli.names import accept_parent_options
from tidings_client.cli.publish import publish
from tidings_client.cli.templates import templates
from tidings_client.cli.tokens import tokens
from tidings_client.console.command import console
from tidings_client.convert import ProtocolError
from tidings_client.errors import TidingsError

OK, SERVER_ERROR, USAGE, NOT_FOUND, CONFLICT, UNREACHABLE, DENIED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130

EXIT_FOR_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: USAGE,
    grpc.StatusCode.OUT_OF_RANGE: USAGE,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: CONFLICT,
    grpc.StatusCode.ABORTED: CONFLICT,
    grpc.StatusCode.UNAVAILABLE: UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: UNREACHABLE,
    grpc.StatusCode.UNAUTHENTICATED: DENIED,
    grpc.StatusCode.PERMISSION_DENIED: DENIED,
}

COMPLETION_HELP = """\b
Examples:
  tidings completion bash > ~/.local/share/bash-completion/completions/tidings
  tidings completion zsh > "${fpath[1]}/_tidings"
  tidings completion fish > ~/.config/fish/completions/tidings.fish
"""


@click.command(context_settings=CONTEXT_SETTINGS, epilog=COMPLETION_HELP)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options and choices complete)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root, {}, "tidings", "_TIDINGS_COMPLETE").source())


for command in (hooks, events, catalog, deliveries, publish, tokens, templates, completion, console):
    accept_parent_options(command)
    root.add_command(command)


def _fail(message: str, code: int) -> int:
    # The message is the server's text, which may echo input such as "[/x]": never markup.
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    return code


_OUTPUT_FLAGS = ("--output", "-o", "--fields")


def hoisted(argv: Sequence[str]) -> list[str]:
    """The output options moved before the command, so that, as with gh and kubectl, they may
    follow it too (``tidings hooks list --json``, ``… list -o name``)."""
    front: list[str] = []
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--json":
            front.append(arg)
        elif arg in _OUTPUT_FLAGS and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 1
        elif arg.startswith(("--output=", "--fields=")) or (arg.startswith("-o") and len(arg) > 2 and arg[2] != "-"):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; never lets a traceback reach the user."""
    args = hoisted(sys.argv[1:] if argv is None else argv)
    try:
        result = root.main(args=args, prog_name="tidings", standalone_mode=False)
    except TidingsError as exc:
        if exc.code == grpc.StatusCode.UNAVAILABLE and Env.connected_to is not None:
            return _fail(
                f"UNAVAILABLE: cannot reach the server at {Env.connected_to}; is it running? Choose another"
                f" with --target HOST:PORT or TIDINGS_TARGET ({exc.message})",
                UNREACHABLE,
            )
        return _fail(f"{exc.code.name}: {exc.message}", EXIT_FOR_CODE.get(exc.code, SERVER_ERROR))
    except ProtocolError as exc:
        return _fail(str(exc), SERVER_ERROR)
    except Declined:
        Console(stderr=True, highlight=False).print("nothing changed", markup=False)
        return SERVER_ERROR
    except (click.exceptions.Abort, KeyboardInterrupt):
        # Ctrl-C (click turns one at a prompt into Abort): the person knows; no error line.
        sys.stderr.write("\n")
        return INTERRUPTED
    except click.UsageError as exc:
        exc.show()  # with the usage line and the pointer to --help
        return exc.exit_code
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except BrokenPipeError:
        # `tidings … | head`: the reader left; nothing more to say.
        sys.stderr.close()
        return OK
    return result if isinstance(result, int) else OK


def main() -> None:
    sys.exit(run())


__all__ = ["main", "root", "run"]
