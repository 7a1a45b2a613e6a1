"""A manifest's lock: operator commands refuse a stack never assembled and warn when the manifest has
changed since (issue 11, item 14); each manifest has a lock of its own that holds nothing
machine-specific (item 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retailblocks import assemble
from retailblocks.assembly.lockfile import lock_path
from retailblocks.errors import AssemblyError
from tests.cli.harness import blocks, copy_example, tree

TEST_CARD = "card::card_number=4242424242424242"


@pytest.fixture
def corner_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = copy_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


def assembled(manifest: Path) -> Path:
    outcome = blocks("assemble", "-m", manifest)
    assert outcome.status == 0, outcome.stderr
    return manifest


@pytest.mark.parametrize(
    "command",
    [
        ["orders", "-m", "{m}"],
        ["checkout", "-m", "{m}", "--channel", "shop", "--item", "MILK-1L:1", "--pay", TEST_CARD, "--key", "k"],
        ["stock", "receive", "-m", "{m}", "MILK-1L", "shop", "3"],
        ["recover", "-m", "{m}"],
    ],
    ids=lambda c: c[0] if c[0] != "stock" else "stock receive",
)
def test_a_command_on_a_manifest_never_assembled_is_refused_and_writes_nothing(
    corner_shop: Path, command: list[str]
) -> None:
    before = tree(corner_shop.parent)
    outcome = blocks(*[corner_shop if part == "{m}" else part for part in command])
    assert outcome.status == 2
    line = outcome.one_error_line()
    assert "never assembled" in line
    assert f"blocks assemble -m {corner_shop}" in line
    assert tree(corner_shop.parent) == before, "no database, no lock, no directory"


def test_an_assembled_manifest_opens_without_a_word(corner_shop: Path) -> None:
    assembled(corner_shop)
    outcome = blocks("orders", "-m", corner_shop)
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr == ""


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda text: text.replace("sk_test_", "sk_test_CHANGED_"), "block 'sandbox-card' configuration changed"),
        (
            lambda text: text.replace("{id: shop, kind: store}", "{id: shop, kind: warehouse}"),
            "block 'sql-inventory' configuration changed",
        ),
    ],
    ids=["secret", "setting"],
)
def test_a_manifest_changed_since_it_was_assembled_is_warned_about_in_one_line(
    corner_shop: Path, edit: object, named: str
) -> None:
    assembled(corner_shop)
    text = corner_shop.read_text(encoding="utf-8")
    changed = edit(text)  # type: ignore[operator]
    assert changed != text, "the edit must change the example"
    corner_shop.write_text(changed, encoding="utf-8")
    outcome = blocks("orders", "-m", corner_shop)
    assert outcome.status == 0, outcome.stderr
    lines = outcome.error_lines
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("warning: ")
    assert named in lines[0]
    assert f"blocks assemble -m {corner_shop}" in lines[0]
    # Assembling again takes the change on, and the warning is gone.
    assembled(corner_shop)
    assert blocks("orders", "-m", corner_shop).stderr == ""


def test_a_block_added_or_removed_is_named(corner_shop: Path) -> None:
    assembled(corner_shop)
    lock = lock_path(corner_shop)
    data = json.loads(lock.read_text(encoding="utf-8"))
    card = next(block for block in data["blocks"] if block["id"] == "sandbox-card")
    card["version"] = "0.0.1"
    data["blocks"].append(card | {"id": "old-card"})
    inventory = next(block for block in data["blocks"] if block["id"] == "sql-inventory")
    data["blocks"] = [block for block in data["blocks"] if block is not inventory] + [inventory | {"id": "gone"}]
    lock.write_text(json.dumps(data), encoding="utf-8")
    line = blocks("orders", "-m", corner_shop).error_lines[0]
    assert "block 'sql-inventory' (sql-inventory) added" in line
    assert "block 'gone' removed" in line and "block 'old-card' removed" in line
    assert "block 'sandbox-card' retailblocks-sandbox-card 0.0.1 is now retailblocks-sandbox-card" in line


def test_the_python_api_still_assembles_a_manifest_without_a_lock(corner_shop: Path) -> None:
    with assemble(corner_shop) as stack:
        assert stack.lock_changes == ()
        assert stack.orders() == []
    with pytest.raises(AssemblyError, match="never assembled"):
        assemble(corner_shop, require_lock=True)


# --- item 15: a lock per manifest, nothing machine-specific in it ---------------------------------------------


def two_manifests(directory: Path) -> tuple[Path, Path]:
    """Two manifests side by side: the corner shop, and a second shop under another merchant id."""
    corner = directory / "corner.yaml"
    corner.write_text(directory.joinpath("blocks.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    other = directory / "other.yaml"
    other.write_text(
        corner.read_text(encoding="utf-8").replace("id: corner-shop, name: Corner Shop", "id: other, name: Other"),
        encoding="utf-8",
    )
    directory.joinpath("blocks.yaml").unlink()
    return corner, other


def test_two_manifests_in_one_directory_keep_a_lock_each(corner_shop: Path) -> None:
    corner, other = two_manifests(corner_shop.parent)
    assembled(corner)
    assembled(other)
    assert json.loads((corner_shop.parent / "corner.lock").read_text(encoding="utf-8"))["merchant"]["id"] == (
        "corner-shop"
    )
    assert json.loads((corner_shop.parent / "other.lock").read_text(encoding="utf-8"))["merchant"]["id"] == "other"
    assert not (corner_shop.parent / "blocks.lock").exists()
    # Each manifest is checked against its own lock: neither is reported as changed.
    for manifest in (corner, other):
        outcome = blocks("orders", "-m", manifest)
        assert outcome.status == 0 and outcome.stderr == "", outcome.stderr


def test_the_lock_of_blocks_yaml_is_blocks_lock(corner_shop: Path) -> None:
    assembled(corner_shop)
    assert lock_path(corner_shop) == corner_shop.parent / "blocks.lock"
    assert (corner_shop.parent / "blocks.lock").is_file()


def test_the_lock_holds_no_path_of_this_machine(corner_shop: Path) -> None:
    assembled(corner_shop)
    text = lock_path(corner_shop).read_text(encoding="utf-8")
    assert str(corner_shop.parent) not in text
    assert json.loads(text)["database"] == "sqlite:///.blocks/corner-shop.db"


@pytest.mark.parametrize(
    ("written", "environ", "locked"),
    [
        ("sqlite:///data/shop.db", {}, "sqlite:///data/shop.db"),
        ("postgresql://app:hunter2@db.example/shop", {}, "postgresql://app:***@db.example/shop"),
        ("${SHOP_DATABASE}", {"SHOP_DATABASE": "postgresql://app:hunter2@db/shop"}, "postgresql+psycopg://"),
        ("${SHOP_DATABASE}", {"SHOP_DATABASE": "sqlite:////srv/shop.db"}, "sqlite://"),
    ],
    ids=["relative sqlite", "password", "from the environment", "absolute from the environment"],
)
def test_the_lock_shows_the_database_as_written_secrets_masked(
    corner_shop: Path, written: str, environ: dict[str, str], locked: str
) -> None:
    from retailblocks.assembly.describe import describe_plan
    from retailblocks.stack import plan

    text = corner_shop.read_text(encoding="utf-8")
    corner_shop.write_text(text.replace("channels:\n", f"database: '{written}'\nchannels:\n", 1), encoding="utf-8")
    database = describe_plan(plan(corner_shop, environ=environ))["database"]
    assert database.startswith(locked)
    assert "hunter2" not in database and "/srv/" not in database and str(corner_shop.parent) not in database


def test_a_kept_demo_is_an_assembled_stack_the_commands_open(tmp_path: Path) -> None:
    kept = tmp_path / "demo"
    demo = blocks("demo", "--keep", kept, "--orders", "3", "--workers", "1", "--json")
    assert demo.status == 0, demo.stderr
    outcome = blocks("orders", "-m", kept / "blocks.yaml", "--json")
    assert outcome.status == 0, outcome.stderr
    assert outcome.stderr == ""


@pytest.mark.parametrize(
    ("manifest", "lock"),
    [
        ("blocks.yaml", "blocks.lock"),
        ("corner.yml", "corner.lock"),
        ("shop", "shop.lock"),
        ("odd.lock", "odd.lock.lock"),
    ],
)
def test_the_lock_is_named_after_its_manifest_and_never_is_the_manifest(manifest: str, lock: str) -> None:
    assert lock_path(Path("/shops") / manifest) == Path("/shops") / lock
