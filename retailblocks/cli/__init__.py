"""The ``blocks`` command: assemble stacks, run orders through them, and look after them.

Exit status: 0 ok, 2 invalid input, 1 a failure of the environment (database unreachable), 3 a valid
request the stack rejected (out of stock, declined), or an invariant a simulation found broken.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from retailblocks.cli import assemble_commands, order_commands, simulation_commands
from retailblocks.cli.support import error_console
from retailblocks.errors import RetailBlocksError

DEBUG_ENV = "RETAILBLOCKS_DEBUG"


class BlocksGroup(click.Group):
    """Adds the operator commands of installed blocks lazily, so a broken block breaks only itself."""

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
        return sorted({*super().list_commands(ctx), *self._block_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._block_commands().get(cmd_name)


@click.group(cls=BlocksGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="retailblocks", prog_name="blocks")
def cli() -> None:
    """Assemble a retailer's systems from blocks, and run orders through them."""


for module in (assemble_commands, order_commands, simulation_commands):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: one line per error, the right exit status, a traceback only with RETAILBLOCKS_DEBUG=1."""
    try:
        return cli.main(args=argv, prog_name="blocks", standalone_mode=True)
    except RetailBlocksError as error:
        error_console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        sys.exit(error.exit_status)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        error_console.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {error} "
            f"(set {DEBUG_ENV}=1 to see the traceback, and please report it)",
            soft_wrap=True,
        )
        sys.exit(1)
