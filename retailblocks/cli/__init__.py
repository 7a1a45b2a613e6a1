"""The ``blocks`` command: assemble stacks, run orders through them, and look after them.

Exit status: 0 ok, 2 invalid input, 1 a failure of the environment (database unreachable), 3 a valid
request the stack rejected (out of stock, declined), or an invariant a simulation found broken.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from retailblocks.cli import (
    assemble_commands,
    connector_commands,
    fusion_commands,
    order_commands,
    platform_commands,
    publishing_commands,
    reference_commands,
    serve_commands,
    simulation_commands,
    statement_commands,
)
from retailblocks.cli.support import errors_as_json, report_error
from retailblocks.errors import RetailBlocksError

DEBUG_ENV = "RETAILBLOCKS_DEBUG"


#: The entry-point group in which a block's distribution names its commands (``stock = "pkg.cli:stock"``), so
#: ``blocks --help`` lists them by importing only their command modules, never the blocks themselves.
COMMANDS_GROUP = "retailblocks.commands"


class BlocksGroup(click.Group):
    """Adds the operator commands of installed blocks lazily, so a broken block breaks only itself.

    Commands named in the ``retailblocks.commands`` entry-point group are listed from the distributions'
    metadata and loaded one by one; a block that only returns its commands from ``Block.cli_commands()``
    is loaded (with every installed block) the first time a command name is not found otherwise.
    """

    def _declared(self) -> dict[str, Any]:
        if not hasattr(self, "_declared_commands"):
            from importlib.metadata import entry_points

            self._declared_commands = {point.name: point for point in entry_points(group=COMMANDS_GROUP)}
        return self._declared_commands

    def _load_declared(self, name: str) -> click.Command | None:
        point = self._declared().get(name)
        if point is None:
            return None
        try:
            command = point.load()
        except Exception:
            return None  # a broken block breaks only its own commands
        return command if isinstance(command, click.Command) else None

    def _block_commands(self) -> dict[str, click.Command]:
        if not hasattr(self, "_from_blocks"):
            from retailblocks.assembly.discovery import discover

            found: dict[str, click.Command] = {}
            for info in discover().values():
                if info.block_class is None:
                    continue
                try:
                    for command in info.block_class.cli_commands():
                        if command.name and command.name not in self.commands:
                            found.setdefault(command.name, command)
                except Exception:
                    continue
            self._from_blocks = found
        return self._from_blocks

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._declared()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return (
            super().get_command(ctx, cmd_name) or self._load_declared(cmd_name) or self._block_commands().get(cmd_name)
        )

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; in standalone mode every failure ends as one ``error:`` line and its status.

        Click's own usage errors (a bad option value, a missing argument) are reported in the same one
        line as retailblocks' errors, with the ``--help`` to try, instead of click's usage block.
        """
        arguments = list(sys.argv[1:] if args is None else args)
        # Known before click parses anything, so that even a misspelt option is reported in JSON.
        errors_as_json("--json" in arguments[: arguments.index("--")] if "--" in arguments else "--json" in arguments)
        if not standalone_mode:
            return super().main(arguments, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(arguments, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            hint = ""
            if error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            report_error(error.format_message() + hint, error.exit_code, "UsageError")
            sys.exit(error.exit_code)
        except click.ClickException as error:
            report_error(error.format_message(), error.exit_code, type(error).__name__)
            sys.exit(error.exit_code)
        except click.Abort:
            report_error("aborted", 1, "Aborted")
            sys.exit(1)
        except RetailBlocksError as error:
            report_error(str(error), error.exit_status, type(error).__name__)
            sys.exit(error.exit_status)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away (``blocks events | head``): nothing more can be said to it.
            _silence_stdout()
            sys.exit(1)
        except OSError as error:
            if error.errno == errno.EPIPE:
                _silence_stdout()
                sys.exit(1)
            _internal_error(error)
        except Exception as error:
            _internal_error(error)
        # Without standalone mode click returns the exit code of an explicit exit (``--help``,
        # ``ctx.exit(n)``) and the command's return value otherwise.
        sys.exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _internal_error(error: Exception) -> NoReturn:
    if os.environ.get(DEBUG_ENV) == "1":
        raise error
    report_error(
        f"{type(error).__name__}: {error} (set {DEBUG_ENV}=1 to see the traceback, and please report it)",
        1,
        "InternalError",
        label="internal error",
    )
    sys.exit(1)


@click.group(cls=BlocksGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retailblocks", prog_name="blocks")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Assemble a retailer's systems from blocks, and run orders through them."""
    # Bare `blocks` is a question, not a mistake: answer it with the help, and success.
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


for module in (
    assemble_commands,
    order_commands,
    simulation_commands,
    fusion_commands,
    statement_commands,
    connector_commands,
    serve_commands,
    publishing_commands,
    reference_commands,
    platform_commands,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one line per error, the right exit status, a traceback only with RETAILBLOCKS_DEBUG=1."""
    return cli.main(args=argv, prog_name="blocks", standalone_mode=True)
