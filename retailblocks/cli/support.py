"""What every ``blocks`` command shares: opening a stack from a manifest, tables, JSON, and failing cleanly.

Block authors use these in the commands their ``cli_commands()`` return, so every command of the
ecosystem reports errors the same way: one line, the right exit status, no traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from retailblocks.errors import RetailBlocksError

if TYPE_CHECKING:
    from retailblocks.assembly.stack import Stack

DEFAULT_MANIFEST = "blocks.yaml"

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


F = TypeVar("F", bound=Callable[..., Any])


def manifest_argument() -> Callable[[F], F]:
    """The optional ``MANIFEST`` argument, defaulting to ``./blocks.yaml``."""
    decorator: Callable[[F], F] = click.argument(
        "manifest", required=False, default=DEFAULT_MANIFEST, type=click.Path(dir_okay=True, path_type=Path)
    )
    return decorator


def fail(message: str, status: int = 2) -> NoReturn:
    """Print one line to stderr and exit with ``status`` (2: bad input, 1: the environment failed)."""
    error_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    sys.exit(status)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn retailblocks errors into one line and their exit status."""
    try:
        yield
    except RetailBlocksError as error:
        fail(str(error), error.exit_status)


@contextmanager
def open_stack(manifest: Path | str, **options: Any) -> Iterator[Stack]:
    """Assemble the stack for an operator command, report errors cleanly, close it afterwards."""
    from retailblocks.assembly.stack import assemble

    with reporting_errors():
        stack = assemble(manifest, **options)
        try:
            yield stack
        finally:
            stack.close()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
