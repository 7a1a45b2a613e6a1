"""``blocks statements``: partner statements drafted, issued once, confirmed, paid and exported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from retailblocks.cli.fusion_commands import _day
from retailblocks.cli.support import (
    console,
    json_option,
    manifest_option,
    money_data,
    open_stack,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from retailblocks.fusion.statements import Statement


@click.group()
def statements() -> None:
    """Partner statements: a period's settlement billed once, then confirmed and paid.

    A statement is never changed once issued: what changed about a line afterwards (a cancelled order, a
    refunded marketplace sale) is a correction line in the next statement. Each statement starts the day
    after the last one with the partner ends."""


F = TypeVar("F", bound=Callable[..., Any])


def _period_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--partner", required=True, help="The partner's id, as the manifest's `partners:` names it."),
            click.option("--from", "start", required=True, metavar="DATE", help="First day (YYYY-MM-DD)."),
            click.option("--to", "end", required=True, metavar="DATE", help="Last day, included."),
        ]
    ):
        command = option(command)
    return command


def _show(statement: Statement, as_json: bool, as_csv: bool = False) -> None:
    if as_csv:
        click.echo(statement.to_csv(), nl=False)
        return
    if as_json:
        print_json(statement.to_data(money_data))
        return
    title = statement.id or "draft"
    console.print(
        f"[bold]statement {title}[/] with {statement.partner}, {statement.start} … {statement.end}: "
        f"{statement.status.value}, total [bold]{statement.total}[/] (positive: the partner pays the merchant)"
    )
    print_table(
        "Lines",
        ["at", "kind", "corrects", "reference", "member", "amount", "detail"],
        [
            [
                line.at.isoformat(timespec="seconds"),
                line.kind,
                line.corrects,
                line.reference,
                line.member_id,
                line.amount,
                line.detail,
            ]
            for line in statement.lines
        ],
    )


@statements.command(name="draft")
@manifest_option()
@_period_options
@json_option()
def draft(manifest: Path, partner: str, start: str, end: str, as_json: bool) -> None:
    """What the statement for a period would bill, with corrections of earlier ones; writes nothing."""
    from retailblocks.fusion.statements import draft_statement

    first, last = _day(start, "--from"), _day(end, "--to")
    with open_stack(manifest) as stack:
        statement = draft_statement(stack, partner, first, last)
    _show(statement, as_json)


@statements.command(name="issue")
@manifest_option()
@_period_options
@json_option()
def issue(manifest: Path, partner: str, start: str, end: str, as_json: bool) -> None:
    """Issue the statement for a period that is over; never changed afterwards. Again: the same statement."""
    from retailblocks.fusion.statements import issue_statement

    first, last = _day(start, "--from"), _day(end, "--to")
    with open_stack(manifest) as stack:
        statement = issue_statement(stack, partner, first, last)
    _show(statement, as_json)


@statements.command(name="list")
@manifest_option()
@click.option("--partner", help="Only this partner's statements.")
@json_option()
def list_(manifest: Path, partner: str | None, as_json: bool) -> None:
    """Issued statements, oldest period first."""
    from retailblocks.fusion.statements import list_statements

    with open_stack(manifest) as stack:
        found = list_statements(stack, partner)
    if as_json:
        print_json([{k: v for k, v in s.to_data(money_data).items() if k != "lines"} for s in found])
        return
    print_table(
        "Statements",
        ["id", "partner", "from", "to", "status", "total", "lines"],
        [[s.id, s.partner, s.start, s.end, s.status.value, s.total, len(s.lines)] for s in found],
    )


@statements.command(name="show")
@manifest_option()
@click.argument("statement_id")
@json_option("Export the statement as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Export the statement's lines as CSV.")
def show(manifest: Path, statement_id: str, as_json: bool, as_csv: bool) -> None:
    """One statement with its lines; --json or --csv to export it."""
    from retailblocks.fusion.statements import get_statement

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are two exports: choose one")
    with open_stack(manifest) as stack:
        statement = get_statement(stack, statement_id)
    _show(statement, as_json, as_csv)


@statements.command(name="confirm")
@manifest_option()
@click.argument("statement_id")
@json_option()
def confirm(manifest: Path, statement_id: str, as_json: bool) -> None:
    """The partner agreed with an issued statement."""
    from retailblocks.fusion.statements import confirm_statement

    with open_stack(manifest) as stack:
        statement = confirm_statement(stack, statement_id)
    _show(statement, as_json)


@statements.command(name="pay")
@manifest_option()
@click.argument("statement_id")
@click.option("--reference", required=True, help="The payment's reference (bank transfer, voucher).")
@json_option()
def pay(manifest: Path, statement_id: str, reference: str, as_json: bool) -> None:
    """A confirmed statement was paid."""
    from retailblocks.fusion.statements import pay_statement

    with open_stack(manifest) as stack:
        statement = pay_statement(stack, statement_id, reference)
    _show(statement, as_json)


COMMANDS = [statements]
