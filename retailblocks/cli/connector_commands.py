"""Channel connectors from the command line: a marketplace's orders imported from a file, and what each
channel may sell (see retailblocks.connectors). Each calls the same Stack operation as the HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    manifest_option,
    open_stack,
    print_json,
    print_table,
    report,
)
from retailblocks.errors import BusinessRejection, InvalidInput

#: A file of marketplace orders is read whole: bounded, so a wrong path cannot exhaust memory.
MAX_FILE_BYTES = 64 * 1024 * 1024


@click.command(name="marketplace-orders")
@manifest_option()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--channel", required=True, help="The marketplace channel the orders were taken on.")
@json_option()
def marketplace_orders(manifest: Path, file: Path, channel: str, as_json: bool) -> None:
    """Import a marketplace's orders from JSON Lines: one order per line, as POST /store/marketplace-orders
    takes it ({"order_number", "lines", "fulfilment", "identities", "collected"}).

    Each order is imported once per its order number: a file sent again imports nothing twice. A line that
    is not a valid order is reported as FILE:LINE: reason and skipped (exit 2); an order the stack refuses
    (out of stock) is reported likewise (exit 3); the others are imported.
    """
    from pydantic import ValidationError

    from retailblocks.http.connectors import MarketplaceOrderIn, marketplace_order_of

    text = _read_text(file)
    imported: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    with open_stack(manifest) as stack:
        stack.channel(channel)
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                body = MarketplaceOrderIn.model_validate(json.loads(line))
                order = stack.import_marketplace_order(marketplace_order_of(body, channel, stack.currency))
            except json.JSONDecodeError as error:
                bad.append({"line": number, "reason": f"not JSON: {error.msg} at column {error.colno}"})
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
                )
                bad.append({"line": number, "reason": problems})
            except InvalidInput as error:
                bad.append({"line": number, "reason": str(error)})
            except BusinessRejection as rejection:
                refused.append({"line": number, "cause": rejection.cause, "reason": str(rejection)})
            else:
                imported.append(
                    {
                        "line": number,
                        "order_number": body.order_number,
                        "order_id": order.id,
                        "status": order.status.value,
                    }
                )
    for problem in [*bad, *refused]:
        report(f"{file}:{problem['line']}: {problem['reason']}")
    if as_json:
        print_json({"imported": imported, "bad": bad, "refused": refused})
    else:
        console.print(f"{len(imported)} orders imported, {len(refused)} refused, {len(bad)} bad lines")
    if bad:
        raise SystemExit(2)
    if refused:
        raise SystemExit(3)


def _read_text(file: Path) -> str:
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            fail(f"{file}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it", 2)
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{file}: no such file", 2)
    except IsADirectoryError:
        fail(f"{file}: a directory, not a file of orders", 2)
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text", 2)
    except OSError as error:
        fail(f"{file}: cannot be read: {error.strerror or error}", 2)


@click.group()
def listings() -> None:
    """What each channel may sell: read in bulk, and changes published as events for webhooks."""


@listings.command(name="show")
@manifest_option()
@click.argument("channel")
@json_option()
def show_listings(manifest: Path, channel: str, as_json: bool) -> None:
    """Units CHANNEL may sell now of every SKU it sells (after its safety stock)."""
    with open_stack(manifest) as stack:
        sellable = stack.channel_stock(channel)
    if as_json:
        print_json({"channel": channel, "sellable": sellable})
        return
    print_table(f"What {channel} may sell", ["sku", "sellable"], sorted(sellable.items()))


@listings.command(name="publish")
@manifest_option()
@json_option()
def publish_listings(manifest: Path, as_json: bool) -> None:
    """Record a listing.stock_changed event for every change of what a marketplace or social channel may
    sell since the last publication (webhooks carry them to the channels' connectors)."""
    with open_stack(manifest) as stack:
        updates = stack.publish_listings()
    rows = [{"channel": u.channel, "sku": u.sku, "sellable": u.sellable, "previous": u.previous} for u in updates]
    if as_json:
        print_json({"published": rows})
        return
    print_table(
        f"{len(rows)} listing changes published",
        ["channel", "sku", "sellable", "was"],
        [[r["channel"], r["sku"], r["sellable"], "" if r["previous"] is None else r["previous"]] for r in rows],
    )


COMMANDS = [marketplace_orders, listings]
