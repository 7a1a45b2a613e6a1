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
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text

from retailblocks.errors import RetailBlocksError

if TYPE_CHECKING:
    from retailblocks.model import Money
    from retailblocks.stack import Stack

DEFAULT_MANIFEST = "blocks.yaml"
#: Names the manifest for every command run without ``-m`` (a shell working on one stack sets it once).
MANIFEST_ENV = "BLOCKS_MANIFEST"

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)


F = TypeVar("F", bound=Callable[..., Any])


def manifest_option() -> Callable[[F], F]:
    """``-m/--manifest PATH``: the one way every command, core or block-contributed, is told its stack.

    An option rather than an optional argument, so it can never swallow a command's own argument
    (``blocks cancel ORDER_ID`` beside a blocks.yaml). Defaults to ``$BLOCKS_MANIFEST``, else ``./blocks.yaml``.
    """
    decorator: Callable[[F], F] = click.option(
        "-m",
        "--manifest",
        "manifest",
        envvar=MANIFEST_ENV,
        default=DEFAULT_MANIFEST,
        show_envvar=True,
        metavar="PATH",
        type=click.Path(dir_okay=True, path_type=Path),
        help=f"The stack's manifest (default: ${MANIFEST_ENV}, else ./{DEFAULT_MANIFEST}).",
    )
    return decorator


def json_option(help: str = "Print the result as JSON.") -> Callable[[F], F]:
    """``--json``: the result as JSON on stdout, and then any error too, as ``{"error": {...}}``."""
    decorator: Callable[[F], F] = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help=f'{help} Errors are then JSON on stdout too: {{"error": {{"type", "message", "exit_status"}}}}.',
    )
    return decorator


def money_data(money: Money) -> dict[str, Any]:
    """The one JSON shape of money in every command's output: minor units and the currency, as the
    Python API's ``to_data`` writes it, so a script reads an order and a shipment alike."""
    return {"amount": money.amount, "currency": money.currency}


class _Output:
    """How this run reports: whether errors are JSON (``--json`` was given) and whether a JSON result
    already went to stdout, which then stays that one document."""

    errors_as_json = False
    printed_json = False


def errors_as_json(enabled: bool) -> None:
    """Set by the ``blocks`` group for each run, from whether ``--json`` is among its arguments."""
    _Output.errors_as_json = enabled
    _Output.printed_json = False


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the runs of blanks around them) folded into single spaces."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def report(message: str, *, label: str = "error") -> None:
    """Print ``label: message`` as one line on stderr.

    ``message`` is shown as written: it quotes the manifest and the operator's input, so square
    brackets in it (a YAML key ``"[/x]"``) are text, never rich markup that could swallow or crash it.
    """
    error_console.print(f"[bold red]{label}:[/] {escape(one_line(message))}", soft_wrap=True)


#: The error type named in JSON when the code failing knows no more precise one than its exit status.
_TYPE_OF_STATUS = {1: "EnvironmentFailure", 2: "InvalidInput", 3: "BusinessRejection"}


def report_error(message: str, status: int, kind: str | None = None, *, label: str = "error") -> None:
    """Say that the command failed: one ``error:`` line on stderr, or with ``--json`` an ``{"error": …}``
    object on stdout (unless the command already printed its JSON result, which stays the one document)."""
    if _Output.errors_as_json and not _Output.printed_json:
        error = {
            "type": kind or _TYPE_OF_STATUS.get(status, "Error"),
            "message": one_line(message),
            "exit_status": status,
        }
        click.echo(json.dumps({"error": error}, sort_keys=True))
        _Output.printed_json = True
        return
    report(message, label=label)


def fail(message: str, status: int = 2, kind: str | None = None) -> NoReturn:
    """Report the failure and exit with ``status`` (2: bad input, 1: the environment failed, 3: rejected)."""
    report_error(message, status, kind)
    sys.exit(status)


def whole_number(text: str) -> int | None:
    """The whole number typed as ``text``, or None if it is not one.

    Only ASCII digits, and not too many: ``str.isdigit`` takes "²", and int() refuses thousands of digits
    with a plain ValueError; both would end as an internal error instead of a bad argument. Nineteen
    digits still reach every bound of model.limits, whose checks then say which one it passed.
    """
    return int(text) if 0 < len(text) <= 19 and text.isascii() and text.isdigit() else None


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn retailblocks errors into one line (one per problem of a manifest) and their exit status."""
    from retailblocks.manifest import ManifestError

    try:
        yield
    except ManifestError as error:
        for problem in error.problems[:-1]:
            report(str(problem))
        fail(str(error.problems[-1]), error.exit_status)
    except RetailBlocksError as error:
        fail(str(error), error.exit_status, type(error).__name__)


def assemble_stack(manifest: Path | str, **options: Any) -> Stack:
    """:func:`retailblocks.assemble` for a command (kept as the one place commands assemble through)."""
    from retailblocks.stack import assemble

    return assemble(manifest, **options)


@contextmanager
def open_stack(manifest: Path | str, **options: Any) -> Iterator[Stack]:
    """Assemble the stack for an operator command, report errors cleanly, close it afterwards.

    A manifest never assembled is refused; one changed since its lock was written is warned about.
    """
    with reporting_errors():
        stack = assemble_stack(manifest, require_lock=True, **options)
        if stack.lock_changes:
            report(
                f"{manifest} has changed since it was assembled ({'; '.join(stack.lock_changes)}); "
                f"run `blocks assemble -m {manifest}` to take them on",
                label="warning",
            )
        try:
            yield stack
        finally:
            stack.close()


#: Status marks some commands put in table cells as markup; every other string cell is shown as text.
_STATUS_MARKS = frozenset({"[green]✓[/]", "[red]✗[/]", "[yellow]![/]"})


def cell(value: object) -> RenderableType:
    """A table cell: ``None`` is empty, rich renderables (``Text("✓", style="green")``) pass through,
    anything else is shown as its text, never read as rich markup (it may be a SKU or a reason)."""
    if value is None:
        return ""
    if isinstance(value, Text):
        return value
    text = str(value)
    if text in _STATUS_MARKS:
        return Text.from_markup(text)
    return Text(text)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        # On a narrow terminal a long value wraps inside its cell rather than losing its end to an ellipsis:
        # ids, distributions and versions are what an operator reads the table for.
        table.add_column(escape(column), overflow="fold")
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    console.print(table)


def _json_default(value: Any) -> Any:
    from retailblocks.model import Money

    return money_data(value) if isinstance(value, Money) else str(value)


def json_text(data: Any, *, indent: int | None = None) -> str:
    """``data`` as JSON; Money anywhere in it in the one shape of :func:`money_data`."""
    return json.dumps(data, indent=indent, sort_keys=True, default=_json_default)


def print_json(data: Any) -> None:
    click.echo(json_text(data, indent=2))
    _Output.printed_json = True


#: What a block's commands (``cli_commands``) may use; the rest of this module is the core's own.
__all__ = [
    "DEFAULT_MANIFEST",
    "MANIFEST_ENV",
    "console",
    "error_console",
    "fail",
    "json_option",
    "json_text",
    "manifest_option",
    "money_data",
    "open_stack",
    "print_json",
    "print_table",
    "reporting_errors",
]
