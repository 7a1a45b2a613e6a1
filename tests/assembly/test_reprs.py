"""Reprs of what assembly builds never show the database password nor a value from the environment.

Manifests, plans and configurations end up in logs, tracebacks and debuggers; the secrets they were
built from must not come along.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retailblocks.stack import plan

PASSWORD = "hunter2-db-password"
CARD_KEY = "sk_test_from_the_environment"
PREFIX = "ENVPFX"

MANIFEST = f"""\
version: 1
merchant: {{id: shop, name: "${{SHOP_NAME}}", currency: EUR}}
database: postgresql://shop:{PASSWORD}@db.example/shop
channels: [{{id: web, type: online}}]
catalog: [{{sku: MILK, title: Milk, price: "1.00 EUR"}}]
blocks:
  - use: sql-inventory
  - use: sandbox-card
    config: {{secret_key: "${{CARD_KEY}}"}}
  - use: stored-value
    config: {{code_prefix: "${{PREFIX}}"}}
"""
ENVIRON = {"SHOP_NAME": "Name-From-The-Environment", "CARD_KEY": CARD_KEY, "PREFIX": PREFIX}


@pytest.fixture
def the_plan(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "blocks.yaml"
    path.write_text(MANIFEST, encoding="utf-8")
    return plan(path, environ=ENVIRON)


def _shown(value: object) -> str:
    return repr(value) + str(value)


def test_no_repr_shows_the_password_or_an_interpolated_value(the_plan) -> None:  # type: ignore[no-untyped-def]
    shown = [
        the_plan,
        the_plan.manifest,
        the_plan.manifest.merchant,
        *the_plan.blocks,
        *the_plan.manifest.blocks,
        *(block.instance.config for block in the_plan.blocks),
    ]
    for value in shown:
        text = _shown(value)
        for secret in (PASSWORD, CARD_KEY, PREFIX, ENVIRON["SHOP_NAME"]):
            assert secret not in text, f"{secret!r} in {text}"
    assert "postgresql+psycopg://shop:***@db.example/shop" in repr(the_plan.manifest)


def test_masked_values_still_work_as_their_text(the_plan) -> None:  # type: ignore[no-untyped-def]
    assert the_plan.manifest.merchant.name == ENVIRON["SHOP_NAME"]
    assert the_plan.manifest.database_url == f"postgresql+psycopg://shop:{PASSWORD}@db.example/shop"
    assert the_plan.blocks[2].instance.config.code_prefix == PREFIX
    assert f"{the_plan.blocks[2].instance.config.code_prefix}-1" == f"{PREFIX}-1"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:secret@host/db", "postgresql+psycopg://u:***@host/db"),
        ("postgresql+psycopg://u@host/db", "postgresql+psycopg://u@host/db"),
        ("postgresql://u:p@ss/w@host:5432/db", "postgresql://u:***@host:5432/db"),
        ("sqlite:////var/shop.db", "sqlite:////var/shop.db"),
    ],
)
def test_mask_password(url: str, shown: str) -> None:
    from retailblocks.manifest.model import mask_password

    assert mask_password(url) == shown
