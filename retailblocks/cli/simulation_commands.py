"""``blocks simulate`` and ``blocks demo``: a reproducible retail day, and the whole system in one command."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    manifest_option,
    print_json,
    print_table,
    reporting_errors,
)

#: The examples ship inside the package, so an installed wheel has the demo too; the repository's
#: examples/lucky-coffee is a link to the same directory.
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEMO_EXAMPLE = "lucky-coffee"


def run_day(
    manifest: Path,
    *,
    orders: int,
    seed: int,
    workers: int,
    profile_path: Path | None,
    as_json: bool,
    title: str = "Simulated day",
    story: bool = False,
    server_workers: int | None = None,
) -> dict[str, Any]:
    """Simulate a day on ``manifest`` in this process, or, with ``server_workers``, through the wire: the
    stack served by ``blocks serve`` with that many workers and the day's shoppers in ``workers`` client
    processes (see retailblocks.simulation.wire)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from retailblocks.clock import ManualClock, RandomIds
    from retailblocks.simulation.day import RetailDay, summarize
    from retailblocks.simulation.profile import load_profile
    from retailblocks.stack import assemble

    with reporting_errors(), ExitStack() as serving:
        profile = load_profile(profile_path, manifest)
        # The stack may hold earlier runs (this seed's too) and other processes' orders: this run's ids and
        # keys carry a token of its own. Within the run the ids still follow the seed, so the orders of a
        # run sort alike every time.
        run = uuid.uuid4().hex[:8]
        ids = RandomIds(seed, namespace=f"s{seed}{run}")
        wire = None
        if server_workers is None:
            clock: ManualClock | None = ManualClock(profile.opening())
            stack = assemble(manifest, clock=clock, ids=ids)
        else:
            # Served, the day runs on the servers' clock: the wall clock.
            clock = None
            stack, wire = _serve(serving, manifest, server_workers=server_workers, clients=workers, ids=ids)
        try:
            day = RetailDay(stack, profile, seed=seed, clock=clock, run=run, wire=wire)
            day.open_store()
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=as_json,
                transient=False,
            ) as bar:
                task = bar.add_task(title, total=orders)
                result = day.run(orders, workers=workers, progress=lambda n: bar.advance(task, n))
            summary = summarize(stack, result)
            if story:  # the demo runs the example's campaigns; a plain simulation leaves them alone
                from retailblocks.fusion.story import boundaryless_summary

                summary["boundaryless"] = boundaryless_summary(stack)
            summary["seed"], summary["workers"] = seed, workers
            if server_workers is not None:
                summary["served_by_workers"] = server_workers
        finally:
            stack.close()
    if as_json:
        print_json(summary)
    else:
        show_summary(summary)
    return summary


def _serve(serving: ExitStack, manifest: Path, *, server_workers: int, clients: int, ids: Any) -> tuple[Any, Any]:
    """The manifest given store and admin keys, assembled, and served until ``serving`` closes; the stack
    (to read the day's outcome from the shared database) and the day's clients."""
    from retailblocks.assembly.lockfile import write_lock
    from retailblocks.simulation.wire import Keys, Wire, api_section, served
    from retailblocks.stack import assemble, plan

    the_plan = plan(manifest)
    if the_plan.manifest.api.keys:
        fail(f"{manifest} declares API keys already; --http gives the day's clients keys of its own", 2)
    keys = Keys.new(list(the_plan.manifest.channels))
    with manifest.open("a", encoding="utf-8") as text:
        text.write(api_section(list(the_plan.manifest.channels), keys))
    write_lock(plan(manifest))
    stack = assemble(manifest, ids=ids)
    serving.callback(stack.close)
    base = serving.enter_context(served(manifest, workers=server_workers))
    wire = Wire(base, keys, processes=clients)
    serving.callback(wire.close)
    return stack, wire


def show_summary(summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['orders_placed']}[/] of {summary['orders_attempted']} checkouts placed in "
        f"{summary['seconds']} s ({summary['orders_per_second']} per second); revenue [bold]{summary['revenue']}[/] "
        f"(gross {summary['gross_sales']}, refunded {summary['refunded']}); {summary['cancelled']} cancelled, "
        f"{summary['refunds']} partly refunded, {summary['replayed_requests']} requests replayed without effect"
    )
    if summary["rejections"]:
        print_table("Rejections by cause", ["cause", "count"], list(summary["rejections"].items()))
    if summary["orders_by_channel"]:
        print_table("Orders by channel", ["channel", "orders"], list(summary["orders_by_channel"].items()))
    if summary["discounts_by_funder"]:
        print_table("Discounts by funder", ["funder", "amount"], list(summary["discounts_by_funder"].items()))
    features = summary.get("features", {})
    if features:
        done = [[label, count] for label, count in features.items() if count]
        print_table(f"What the day exercised ({len(done)} of {len(features)})", ["", "times"], done)
    show_boundaryless(summary.get("boundaryless"))
    print_table(
        "Invariants",
        ["", "invariant", "detail"],
        [["[green]✓[/]" if i["ok"] else "[red]✗[/]", i["name"], i["detail"]] for i in summary["invariants"]],
    )
    for note in summary.get("notes", []):
        console.print(f"note: {note}")


def show_boundaryless(story: dict[str, Any] | None) -> None:
    """Members fused across channels, what each partner owes, and what each campaign reached."""
    if not story:
        return
    console.print(
        f"[bold]Boundaryless[/]: {story['members']} members fused, {story['members_in_several_channels']} buying in "
        f"several channels, {story['members_with_several_identities']} known by several identities"
    )
    if story["settlements"]:
        print_table(
            "Partner settlement (the day)",
            ["partner", "partner owes", "merchant owes", "net"],
            [
                [p, s["partner_owes_merchant"], s["merchant_owes_partner"], s["net"]]
                for p, s in story["settlements"].items()
            ],
        )
    if story["campaigns"]:
        print_table(
            "Campaigns",
            ["campaign", "segment", "reach", "redemptions", "revenue"],
            [[c, r["segment"], r["reach"], r["redemptions"], r["revenue"]] for c, r in story["campaigns"].items()],
        )


@click.command()
@manifest_option()
@click.option("--orders", type=click.IntRange(min=1, max=1_000_000), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--workers", type=click.IntRange(min=1, max=64), default=1, show_default=True)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Simulation profile (default: simulation.yaml beside the manifest, if any).",
)
@json_option()
def simulate(manifest: Path, orders: int, seed: int, workers: int, profile_path: Path | None, as_json: bool) -> None:
    """Run a reproducible mix of shoppers against the manifest's stack and check the invariants."""
    summary = run_day(manifest, orders=orders, seed=seed, workers=workers, profile_path=profile_path, as_json=as_json)
    if not summary["ok"]:
        fail("an invariant failed: see the table above", 3)


@click.command()
@click.option("--orders", type=click.IntRange(min=1, max=100_000), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=1,
    show_default=True,
    help="Shoppers at once (threads; with --http, client processes).",
)
@click.option(
    "--http",
    "server_workers",
    type=click.IntRange(min=1, max=16),
    is_flag=False,
    flag_value=2,
    default=None,
    help="Run the day through the wire: `blocks serve` with this many workers (2 if no number is given), "
    "and every shopper and back-office action sent as an HTTP request.",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Assemble into this directory and keep it (default: a temporary directory).",
)
@json_option()
def demo(orders: int, seed: int, workers: int, server_workers: int | None, keep: Path | None, as_json: bool) -> None:
    """Assemble the richest example into a fresh directory and simulate a retail day in it.

    With one worker (the default) the day is reproducible: the same --seed and --orders give the same
    orders, rejections, revenue and invariants every time (only the timings differ). With --workers N,
    N shoppers check out at once: the requests are the same, but which of two racing checkouts gets the
    last unit, a member's last points or a coupon's last use depends on the scheduler, so the figures may
    differ from run to run; the invariants hold either way."""
    source = EXAMPLES / DEMO_EXAMPLE
    if not (source / "blocks.yaml").exists():
        fail(f"the demo example is missing: {source / 'blocks.yaml'}", 1)
    workdir = keep or Path(tempfile.mkdtemp(prefix="retailblocks-demo-"))
    if keep is not None and (keep / "blocks.yaml").exists():
        fail(f"{keep} already holds a blocks.yaml; give an empty directory", 2)
    workdir.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, workdir / item.name)
    if not as_json:
        console.print(f"[bold]retailblocks demo[/]: {DEMO_EXAMPLE} assembled in {workdir}")
    try:
        summary = run_day(
            workdir / "blocks.yaml",
            orders=orders,
            seed=seed,
            workers=workers,
            profile_path=None,
            as_json=as_json,
            title="A retail day" if server_workers is None else "A retail day through the wire",
            story=True,
            server_workers=server_workers,
        )
        if keep is not None:
            # A kept directory is a stack the operator goes on with (`blocks orders`…), which open only a
            # manifest that has its lock.
            from retailblocks.assembly.lockfile import write_lock
            from retailblocks.stack import plan

            with reporting_errors():
                write_lock(plan(workdir / "blocks.yaml"))
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if not summary["ok"]:
        fail("an invariant failed: see the table above", 3)


COMMANDS = [simulate, demo]
