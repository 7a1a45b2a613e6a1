"""``blocks platform``: many merchants on one deployment (see docs/platform.md and retailblocks.platform)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import click
from rich.markup import escape

from retailblocks.cli.support import console, json_option, print_json, print_table, reporting_errors

if TYPE_CHECKING:
    from retailblocks.platform.operations import MerchantSummary

PLATFORM_ENV = "BLOCKS_PLATFORM"
DEFAULT_PLATFORM = "platform.yaml"
F = TypeVar("F", bound=Callable[..., Any])


def platform_option() -> Callable[[F], F]:
    """``-p/--platform PATH``: the platform manifest, as ``-m`` names a stack's (an option, never an argument)."""
    decorator: Callable[[F], F] = click.option(
        "-p",
        "--platform",
        "platform",
        envvar=PLATFORM_ENV,
        default=DEFAULT_PLATFORM,
        show_envvar=True,
        metavar="PATH",
        type=click.Path(dir_okay=True, path_type=Path),
        help=f"The platform manifest (default: ${PLATFORM_ENV}, else ./{DEFAULT_PLATFORM}).",
    )
    return decorator


@click.group()
def platform() -> None:
    """Many merchants on one deployment: each its own blocks.yaml, its own schema or file, its own keys."""


def _show(merchants: list[MerchantSummary], as_json: bool, title: str) -> None:
    if as_json:
        print_json([attrs.asdict(merchant) for merchant in merchants])
        return
    print_table(
        title,
        ["merchant", "status", "database", "blocks", "manifest"],
        [[m.id, m.status, m.database, ", ".join(m.blocks), m.manifest] for m in merchants],
    )


@platform.command()
@platform_option()
@json_option("Print the merchants as JSON.")
def check(platform: Path, as_json: bool) -> None:
    """Validate platform.yaml and every merchant's manifest; nothing is written."""
    from retailblocks.platform.operations import check_platform

    with reporting_errors():
        merchants = check_platform(platform)
    if as_json:
        _show(merchants, True, "")
        return
    console.print(f"[green]✓[/] {escape(str(platform))} is valid: {len(merchants)} merchant(s) (nothing written)")


@platform.command()
@platform_option()
@json_option("Print the merchants as JSON.")
def assemble(platform: Path, as_json: bool) -> None:
    """Migrate every merchant's schema (or file) and write each merchant's lock beside its manifest."""
    from retailblocks.platform.operations import assemble_platform

    with reporting_errors():
        merchants = assemble_platform(platform)
    _show(merchants, as_json, f"assembled {len(merchants)} merchant(s)")


@platform.command(name="list")
@platform_option()
@json_option("Print the merchants as JSON.")
def list_merchants(platform: Path, as_json: bool) -> None:
    """The merchants with their live status, database and blocks."""
    from retailblocks.platform.operations import list_platform

    with reporting_errors():
        merchants = list_platform(platform)
    _show(merchants, as_json, "merchants")


def _one(merchant: MerchantSummary, as_json: bool, done: str) -> None:
    if as_json:
        print_json(attrs.asdict(merchant))
        return
    console.print(f"[green]✓[/] merchant {escape(merchant.id)} {done}")


@platform.command()
@platform_option()
@click.argument("merchant")
@json_option("Print the merchant as JSON.")
def pause(platform: Path, merchant: str, as_json: bool) -> None:
    """Pause MERCHANT: every server answers its routes 503 within seconds; its data stays."""
    from retailblocks.platform.operations import pause_merchant

    with reporting_errors():
        summary = pause_merchant(platform, merchant)
    _one(summary, as_json, "paused")


@platform.command()
@platform_option()
@click.argument("merchant")
@json_option("Print the merchant as JSON.")
def resume(platform: Path, merchant: str, as_json: bool) -> None:
    """Resume a paused MERCHANT."""
    from retailblocks.platform.operations import resume_merchant

    with reporting_errors():
        summary = resume_merchant(platform, merchant)
    _one(summary, as_json, "resumed")


@platform.command()
@platform_option()
@click.argument("merchant")
@json_option("Print the merchant as JSON.")
def add(platform: Path, merchant: str, as_json: bool) -> None:
    """Assemble MERCHANT, newly written into platform.yaml; running servers serve it without a restart."""
    from retailblocks.platform.operations import add_merchant

    with reporting_errors():
        summary = add_merchant(platform, merchant)
    _one(summary, as_json, f"assembled ({summary.status})")


@platform.command()
@platform_option()
@click.argument("merchant")
@click.option(
    "--archive",
    "archive",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the merchant's rows are written (a new directory MERCHANT-TIME inside it) before anything is dropped.",
)
@json_option("Print what was archived as JSON.")
def remove(platform: Path, merchant: str, archive: Path, as_json: bool) -> None:
    """Pause MERCHANT, archive its rows (JSON Lines per table), then drop its schema and role (or its file)."""
    from retailblocks.platform.operations import remove_merchant

    with reporting_errors():
        removal = remove_merchant(platform, merchant, archive)
    if as_json:
        print_json({"id": removal.id, "archive": removal.archive, "rows": dict(removal.rows)})
        return
    where = escape(removal.archive) if removal.archive else "nothing left to archive"
    console.print(
        f"[green]✓[/] merchant {escape(removal.id)} removed ({sum(removal.rows.values())} rows archived: {where}); "
        "now write it out of the platform manifest",
        soft_wrap=True,
    )


@platform.command()
@platform_option()
@click.argument("merchant")
@click.option("--to", "to", required=True, metavar="DATABASE", help="The database (a name of databases:) to move to.")
@click.option(
    "--settle",
    "settle",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="How long the merchant answers 503 before its rows are read, so no request still writes them "
    "(default: the servers' status cache plus a request's grace, 5 s; 0 when no server runs).",
)
@click.option(
    "--paused",
    "paused",
    is_flag=True,
    help="Copy with the merchant paused throughout, even where the servers could copy it while it serves.",
)
@json_option("Print what was moved as JSON.")
def move(platform: Path, merchant: str, to: str, settle: float | None, paused: bool, as_json: bool) -> None:
    """Move MERCHANT to database DATABASE. Between PostgreSQL servers with wal_level=logical its rows are
    copied by logical replication while it keeps serving, and it answers 503 only for the last changes, the
    check and the switch; otherwise (SQLite, or no logical replication: the output says why) it answers
    503 for the whole copy. Then it is served from DATABASE and its old schema (or file) is dropped. A move
    that fails leaves it served from where it was; run again to finish a move whose process died."""
    from retailblocks.platform.move import move_merchant_at

    with reporting_errors():
        moved = move_merchant_at(platform, merchant, to, settle_seconds=settle, online=not paused)
    if as_json:
        print_json(moved.as_json())
        return
    finished = " (finished an earlier run's move)" if moved.resumed else ""
    if moved.online:
        how = f"copied online, writes paused {moved.paused_seconds:.1f} s for the switch"
    elif moved.rows:
        how = f"copied paused ({moved.paused_copy_reason}), paused {moved.paused_seconds:.1f} s"
    else:
        how = "only its old storage was left to drop"
    console.print(
        f"[green]✓[/] merchant {escape(moved.id)} moved from {escape(moved.source)} to {escape(moved.target)}"
        f"{finished}: {sum(moved.rows.values())} rows copied and checked, {escape(how)}; set its "
        f"'database: {escape(moved.target)}' in the platform manifest",
        soft_wrap=True,
    )


@platform.command(name="settle")
@platform_option()
@click.option(
    "--period",
    "period",
    required=True,
    metavar="PERIOD",
    help="A month (2026-11), a day (2026-11-30) or two days (2026-11-01..2026-11-15), in UTC.",
)
@click.option("--merchant", "merchants", multiple=True, metavar="MERCHANT", help="Only this merchant (repeatable).")
@json_option("Print the statements, line by line, as JSON.")
def settle_command(platform: Path, period: str, merchants: tuple[str, ...], as_json: bool) -> None:
    """Each merchant's statement with the platform for PERIOD: points earned and spent and platform coupons
    redeemed there, from the platform's ledger of shared rights (positive: the platform pays the merchant)."""
    from retailblocks.platform.operations import settle_platform
    from retailblocks.platform.rights import parse_period, settlement_json

    with reporting_errors():
        start, end = parse_period(period)
        settlement = settle_platform(platform, start, end, merchants=list(merchants) or None)
    if as_json:
        print_json(settlement_json(settlement))
        return
    print_table(
        f"settlement of {settlement.platform} with its merchants, {start} to {end}",
        ["merchant", "lines", "points earned", "points spent", "coupons", "merchant's ledger", "platform owes"],
        [
            [
                s.merchant,
                str(len(s.lines)),
                str(s.earned_points),
                str(s.spent_points),
                s.coupons.format(),
                "not read"
                if s.merchant_ledger is None
                else s.merchant_ledger.format() + ("" if s.reconciled else " ✗"),
                s.total.format(),
            ]
            for s in settlement.statements
        ],
    )
    for currency, amount in sorted(settlement.ledger_total.items()):
        console.print(f"platform ledger, {currency}: {amount} minor units; statements balance: {settlement.balanced}")


COMMANDS = [platform]
