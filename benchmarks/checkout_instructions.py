"""Instructions per checkout on SQLite, counted by valgrind: an A/B figure this shared machine cannot blur.

Wall-clock figures here move by ±10% (by ±40% with other work running) within minutes; instructions counted
under callgrind repeat to within about 1%. The script runs itself twice under valgrind — once placing no
measured checkout, once placing ``--orders`` — after the same assembly, stock and warm-up, and prints the
difference divided by the number of checkouts. Run it in two trees to compare them:

    uv run python benchmarks/checkout_instructions.py --orders 60
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from retailblocks.hookspecs import inventory

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 20


def place(orders: int, work: Path) -> None:
    """Assemble the test shop in ``work``, warm up, then place ``orders`` checkouts (the measured part)."""
    sys.path.insert(0, str(ROOT))
    from retailblocks import assemble
    from retailblocks.clock import ManualClock, RandomIds
    from retailblocks.model import Address, Cart, CartLine, Fulfilment, FulfilmentKind, Identity, PaymentRequest
    from tests.helpers import SHOP_MANIFEST

    manifest = work / "blocks.yaml"
    manifest.write_text(textwrap.dedent(SHOP_MANIFEST).replace("DATABASE", f"sqlite:///{work}/shop.db"))
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    stack = assemble(manifest, clock=clock, ids=RandomIds(1))
    with stack.context() as ctx:
        for sku in stack.catalog:
            stack.hooks.call(inventory.inventory_adjust, ctx, sku, "dc", 100_000, "received", f"receive-{sku}")
    address = Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45)

    def cart(n: int) -> Cart:
        return Cart(
            channel="web",
            lines=(CartLine("BEANS", 1), CartLine("MUG", 1), CartLine("TEA", 2)),
            payments=(PaymentRequest("card", None, {"card_number": "4242424242424242"}),),
            identities=(Identity("phone", f"+86138{n % 50:08d}"),),
            fulfilment=Fulfilment(FulfilmentKind.DELIVERY, address),
        )

    for n in range(WARM_UP):
        stack.checkout(cart(n), key=f"warm-{n}")
    for n in range(orders):
        stack.checkout(cart(n), key=f"measured-{n}")
    stack.close()


def count(orders: int) -> int:
    """Instructions of a whole run placing ``orders`` measured checkouts."""
    work = Path(tempfile.mkdtemp(prefix="rb-instructions-"))
    try:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--cache-sim=no",
                f"--callgrind-out-file={work / 'callgrind.out'}",
                sys.executable,
                __file__,
                "--place",
                str(orders),
                "--work",
                str(work),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=False,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or found is None:
            raise SystemExit(f"the run under valgrind failed: {done.stderr.strip().splitlines()[-1:]}")
        return int(found.group(1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60, help="measured checkouts (default 60)")
    parser.add_argument("--place", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.place is not None:
        place(arguments.place, arguments.work)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if arguments.orders < 1:
        raise SystemExit("--orders must be at least 1")
    base, measured = count(0), count(arguments.orders)
    per_checkout = (measured - base) / arguments.orders
    print(
        f"sqlite: {per_checkout / 1e6:.2f} M instructions per checkout "
        f"({arguments.orders} checkouts after {WARM_UP} warm-up)"
    )


if __name__ == "__main__":
    main()
