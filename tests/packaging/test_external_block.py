"""Blocks are packages: each reference block builds as its own wheel, and a block built outside the
workspace and installed into the environment is discovered and assembled with no change to the core.

The third-party block here is a till: ``cash-drawer``, a payment block for the method ``cash`` that keeps
its payments in its own prefixed tables. It is built with ``uv build`` from a project in a temporary
directory, installed with ``uv pip install --target`` into a directory of its own (the project's
environment is left alone) and put on ``PYTHONPATH`` of a real ``blocks`` process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.cli.harness import REPOSITORY, Outcome, blocks_process

REFERENCE_BLOCKS = {
    "retailblocks-sql-inventory": "sql-inventory",
    "retailblocks-sandbox-card": "sandbox-card",
    "retailblocks-stored-value": "stored-value",
    "retailblocks-loyalty": "loyalty",
    "retailblocks-logistics": "logistics",
    "retailblocks-promotions": "promotions",
    "retailblocks-reach-sandbox": "reach-sandbox",
}


def uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        pytest.skip("uv is not installed (pip install uv)")
    return found


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


def ok(outcome: Outcome) -> Outcome:
    assert outcome.status == 0, outcome.stderr
    assert "Traceback" not in outcome.stdout + outcome.stderr
    return outcome


def wheel_metadata(wheel: Path) -> tuple[str, dict[str, dict[str, str]], list[str]]:
    """A wheel's name, its entry points by group, and its ``Requires-Dist``."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points_file = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata_file = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points_text = archive.read(entry_points_file).decode()
        message = Parser().parsestr(archive.read(metadata_file).decode())
    groups: dict[str, dict[str, str]] = {}
    group = ""
    for raw in entry_points_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            groups[group] = {}
        elif "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            groups[group][name] = target
    return str(message["Name"]), groups, list(message.get_all("Requires-Dist") or [])


# --- the reference blocks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", list(REFERENCE_BLOCKS))
def test_each_reference_block_builds_a_wheel_with_a_retailblocks_entry_point(distribution: str, tmp_path: Path) -> None:
    run([uv(), "build", "--package", distribution, "--wheel", "--out-dir", str(tmp_path)], cwd=REPOSITORY)

    wheels = list(tmp_path.glob("*.whl"))
    assert len(wheels) == 1
    name, entry_points, requires = wheel_metadata(wheels[0])
    assert name == distribution
    block = REFERENCE_BLOCKS[distribution]
    assert block in entry_points["retailblocks"]
    assert entry_points["retailblocks"][block].startswith(distribution.replace("-", "_") + ":")
    core = [r for r in requires if r.split(";")[0].replace(" ", "").startswith("retailblocks")]
    assert core, "a block depends on the core"
    assert ">=" in core[0], "with a lower bound"
    assert "<" in core[0].replace("<=", ""), "and a cap on the major version"


# --- a third party's block --------------------------------------------------------------------------------------


PYPROJECT = """\
[project]
name = "retailblocks-cash-drawer"
version = "0.3.1"
description = "A till for retailblocks: cash payments counted into a drawer."
requires-python = ">=3.11"
dependencies = ["retailblocks>=0.1,<1"]

[project.entry-points.retailblocks]
cash-drawer = "retailblocks_cash_drawer:CashDrawer"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["retailblocks_cash_drawer"]
"""

BLOCK = '''\
"""A till: cash payments, authorized when the cashier takes the money and kept in the drawer's tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import sqlalchemy as sa

from retailblocks import Block, Capability, FlowContext, hookimpl
from retailblocks.errors import InvalidValue, PaymentDeclined
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund, PaymentStatus
from retailblocks.storage import Migration, create_tables

metadata = sa.MetaData()
payments = sa.Table(
    "cash_drawer_payments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
    sa.Column("drawer", sa.String(64), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=False, default=0),
    sa.Column("refunded", sa.BigInteger, nullable=False, default=0),
    sa.Column("voided", sa.Boolean, nullable=False, default=False),
)
operations = sa.Table(
    "cash_drawer_operations",
    metadata,
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("payment_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
)


@attrs.frozen
class Config:
    drawer: str = "front"
    max_amount: Money | None = None


class CashDrawer(Block):
    name = "cash-drawer"
    capabilities = frozenset({Capability.PAYMENT})
    core_api = "1.0"
    Config = Config
    payment_methods = ("cash",)
    description = "cash payments into a till"

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return [create_tables(1, "the drawer's payments and operations", payments, operations)]

    @hookimpl
    def payment_authorize(
        self,
        ctx: FlowContext,
        method: str,
        amount: Money,
        details: Mapping[str, str],
        member_id: str | None,
        idempotency_key: str,
    ) -> PaymentAuthorization:
        found = self._by_key(ctx, idempotency_key)
        if found is not None:
            return found
        if self.config.max_amount is not None and amount.amount > self.config.max_amount.amount:
            raise PaymentDeclined(f"cash-drawer takes at most {self.config.max_amount} in cash", reason="limit")
        payment_id = ctx.ids.new_id("cash")
        ctx.db.execute(
            payments.insert().values(
                id=payment_id,
                idempotency_key=idempotency_key,
                drawer=self.config.drawer,
                currency=amount.currency,
                amount=amount.amount,
                captured=0,
                refunded=0,
                voided=False,
            )
        )
        return PaymentAuthorization(payment_id, self.id, "cash", amount, reference=f"drawer {self.config.drawer}")

    @hookimpl
    def payment_status(self, ctx: FlowContext, method: str, idempotency_key: str) -> PaymentAuthorization | None:
        return self._by_key(ctx, idempotency_key)

    @hookimpl
    def payment_capture(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentCapture:
        if self._operation(ctx, idempotency_key, authorization.id, "capture", amount.amount):
            changed = ctx.db.execute(
                payments.update()
                .where(
                    payments.c.id == authorization.id,
                    payments.c.voided == sa.false(),
                    payments.c.captured + amount.amount <= payments.c.amount,
                )
                .values(captured=payments.c.captured + amount.amount)
            ).rowcount
            if changed != 1:
                raise InvalidValue(f"cannot capture {amount} of {authorization.id}")
        return PaymentCapture(f"{authorization.id}:{idempotency_key}", authorization.id, amount)

    @hookimpl
    def payment_void(self, ctx: FlowContext, authorization: PaymentAuthorization, idempotency_key: str) -> None:
        ctx.db.execute(payments.update().where(payments.c.id == authorization.id).values(voided=True))

    @hookimpl
    def payment_refund(
        self, ctx: FlowContext, authorization: PaymentAuthorization, amount: Money, idempotency_key: str
    ) -> PaymentRefund:
        if self._operation(ctx, idempotency_key, authorization.id, "refund", amount.amount):
            changed = ctx.db.execute(
                payments.update()
                .where(payments.c.id == authorization.id, payments.c.refunded + amount.amount <= payments.c.captured)
                .values(refunded=payments.c.refunded + amount.amount)
            ).rowcount
            if changed != 1:
                raise InvalidValue(f"cannot refund {amount} of {authorization.id}")
        return PaymentRefund(f"{authorization.id}:{idempotency_key}", authorization.id, amount)

    def _by_key(self, ctx: FlowContext, idempotency_key: str) -> PaymentAuthorization | None:
        query = sa.select(payments).where(payments.c.idempotency_key == idempotency_key)
        row = ctx.db.execute(query).mappings().first()
        if row is None:
            return None
        return PaymentAuthorization(
            row["id"], self.id, "cash", Money(row["amount"], row["currency"]), PaymentStatus.AUTHORIZED
        )

    def _operation(self, ctx: FlowContext, key: str, payment_id: str, kind: str, amount: int) -> bool:
        """Record an operation under its key; False when the key was already used (a retry)."""
        if ctx.db.execute(sa.select(operations.c.kind).where(operations.c.idempotency_key == key)).first():
            return False
        ctx.db.execute(operations.insert().values(idempotency_key=key, payment_id=payment_id, kind=kind, amount=amount))
        return True
'''

MANIFEST = """\
version: 1
merchant: {id: kiosk, name: The Kiosk, currency: EUR}
channels:
  - {id: counter, type: store, location: counter}
catalog:
  - {sku: PAPER, title: Newspaper, price: "2.50 EUR"}
blocks:
  - use: sql-inventory
    config:
      locations: [{id: counter, kind: store}]
  - use: sandbox-card
    id: card
    config: {secret_key: sk_test_kiosk}
  - use: cash-drawer
    id: till
    version: ">=0.3,<1"
    config:
      drawer: counter-1
      max_amount: "100.00 EUR"
routing:
  payment:
    cash: till
"""


@pytest.fixture(scope="module")
def installed_block(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cash-drawer block, built as a wheel outside the workspace and installed into a directory of its
    own; returns that directory (to put on ``PYTHONPATH``)."""
    root = tmp_path_factory.mktemp("third-party")
    project = root / "retailblocks-cash-drawer"
    (project / "retailblocks_cash_drawer").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project / "retailblocks_cash_drawer" / "__init__.py").write_text(BLOCK, encoding="utf-8")

    run([uv(), "build", "--wheel", "--out-dir", str(root / "dist"), str(project)], cwd=project)
    (wheel,) = (root / "dist").glob("*.whl")
    _, entry_points, _ = wheel_metadata(wheel)
    assert entry_points["retailblocks"] == {"cash-drawer": "retailblocks_cash_drawer:CashDrawer"}

    site = root / "site"
    run(
        [uv(), "pip", "install", "--python", sys.executable, "--target", str(site), "--no-deps", str(wheel)],
        cwd=root,
    )
    return site


def test_the_external_block_is_discovered_with_its_distribution(installed_block: Path, tmp_path: Path) -> None:
    listed = json.loads(
        ok(blocks_process("plugins", "--json", cwd=tmp_path, env={"PYTHONPATH": str(installed_block)})).stdout
    )
    entry = next(e for e in listed if e["name"] == "cash-drawer")
    assert entry["distribution"] == "retailblocks-cash-drawer"
    assert entry["version"] == "0.3.1"
    assert entry["capabilities"] == ["payment"]
    assert entry["payment_methods"] == ["cash"]
    assert {"payment_authorize", "payment_capture", "payment_refund", "stack_migrations"} <= set(entry["hooks"])


def test_the_environment_of_the_project_is_left_alone(installed_block: Path, tmp_path: Path) -> None:
    listed = json.loads(ok(blocks_process("plugins", "--json", cwd=tmp_path)).stdout)
    assert "cash-drawer" not in {entry["name"] for entry in listed}


def test_the_external_block_is_assembled_and_takes_payments(installed_block: Path, tmp_path: Path) -> None:
    (tmp_path / "blocks.yaml").write_text(MANIFEST, encoding="utf-8")
    env = {"PYTHONPATH": str(installed_block)}

    assembled = ok(blocks_process("assemble", "--json", cwd=tmp_path, env=env))

    lock = json.loads((tmp_path / "blocks.lock").read_text(encoding="utf-8"))
    assert json.loads(assembled.stdout) == lock
    till = next(block for block in lock["blocks"] if block["id"] == "till")
    assert till["use"] == "cash-drawer"
    assert till["distribution"] == "retailblocks-cash-drawer"
    assert till["version"] == "0.3.1"
    assert till["config"] == {"drawer": "counter-1", "max_amount": "100.00 EUR"}
    assert lock["routing"]["payment_methods"] == {"card": "card", "cash": "till", "marketplace": "connectors"}
    assert lock["routing"]["hooks"]["payment_authorize"]["blocks"] == ["card", "till"]

    ok(blocks_process("stock", "receive", "-m", "blocks.yaml", "PAPER", "counter", "5", cwd=tmp_path, env=env))
    order = json.loads(
        ok(
            blocks_process(
                "checkout",
                "--channel",
                "counter",
                "--item",
                "PAPER:2",
                "--pay",
                "cash",
                "--key",
                "sale-1",
                "--json",
                cwd=tmp_path,
                env=env,
            )
        ).stdout
    )
    assert order["total"] == {"amount": 500, "currency": "EUR"}
    with sqlite3.connect(tmp_path / ".blocks" / "kiosk.db") as database:
        drawer = database.execute("SELECT drawer, amount, captured FROM cash_drawer_payments").fetchall()
    assert drawer == [("counter-1", 500, 500)]


def test_a_bad_config_of_the_external_block_is_refused_like_any_other(installed_block: Path, tmp_path: Path) -> None:
    manifest = MANIFEST.replace('max_amount: "100.00 EUR"', "max_amount: lots")
    (tmp_path / "blocks.yaml").write_text(manifest, encoding="utf-8")

    outcome = blocks_process("assemble", cwd=tmp_path, env={"PYTHONPATH": str(installed_block)})

    assert outcome.status == 2
    line = outcome.one_error_line()
    assert line.startswith("error: blocks.yaml:19:19: blocks[2].config.max_amount: "), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocks.yaml"]


def test_without_the_external_block_a_manifest_using_it_names_it(tmp_path: Path) -> None:
    (tmp_path / "blocks.yaml").write_text(MANIFEST, encoding="utf-8")
    outcome = blocks_process("assemble", "--check", cwd=tmp_path)
    assert outcome.status == 2
    assert "unknown block 'cash-drawer'" in outcome.one_error_line()
