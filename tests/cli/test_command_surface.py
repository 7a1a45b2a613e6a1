"""One command surface: every ``blocks`` command, block-contributed ones included, follows the same rules.

The walk goes through the click group's own command list, so a command a block adds tomorrow is held to the
rules without anyone remembering to add it here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from retailblocks.cli import cli
from tests.cli.harness import assembled_example, blocks, copy_example

#: The commands that never open a stack, so they take no manifest.
STACKLESS = {"plugins", "schema", "demo", "openapi", "hooks", "catalogue", "new"}


def every_command() -> dict[str, click.Command]:
    """Every runnable command by its path after ``blocks`` (``stock receive``), groups walked through."""
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        context = click.Context(group)
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None, f"{prefix}{name} is listed but cannot be loaded"
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(cli, "")
    return found


COMMANDS = every_command()
#: The commands on a platform manifest (many stacks), told it by -p/--platform instead of -m/--manifest.
PLATFORM = {path for path in COMMANDS if path.startswith("platform ")}


def test_the_walk_sees_the_block_contributed_commands() -> None:
    assert {"stock receive", "stock levels", "shipments track", "checkout"} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_no_command_takes_the_manifest_as_an_argument(path: str) -> None:
    arguments = [p.name for p in COMMANDS[path].params if isinstance(p, click.Argument)]
    assert "manifest" not in arguments


@pytest.mark.parametrize("path", sorted(PLATFORM))
def test_every_platform_command_takes_the_platform_as_p_or_platform(path: str) -> None:
    options = {opt: p for p in COMMANDS[path].params if isinstance(p, click.Option) for opt in p.opts}
    assert "-p" in options and "--platform" in options, f"blocks {path} lacks -p/--platform"
    option = options["--platform"]
    assert not option.required and option.envvar == "BLOCKS_PLATFORM" and option.default == "platform.yaml"


@pytest.mark.parametrize("path", sorted(set(COMMANDS) - STACKLESS - PLATFORM))
def test_every_stack_command_takes_the_manifest_as_m_or_manifest(path: str) -> None:
    options = {opt: p for p in COMMANDS[path].params if isinstance(p, click.Option) for opt in p.opts}
    assert "-m" in options and "--manifest" in options, f"blocks {path} lacks -m/--manifest"
    option = options["--manifest"]
    assert option.name == "manifest"
    assert not option.required, "the manifest defaults to $BLOCKS_MANIFEST, else ./blocks.yaml"
    assert option.envvar == "BLOCKS_MANIFEST"
    assert option.default == "blocks.yaml"


@pytest.fixture
def corner_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest = assembled_example("corner-shop", tmp_path)
    monkeypatch.chdir(manifest.parent)
    return manifest


def test_cancel_beside_a_blocks_yaml_reads_its_order_id(corner_shop: Path) -> None:
    """It said "Missing argument 'ORDER_ID'": the optional manifest argument swallowed the order's id."""
    outcome = blocks("cancel", "ord_nope")
    assert outcome.status == 2
    assert "no order 'ord_nope'" in outcome.one_error_line()


def test_the_manifest_comes_from_blocks_manifest_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = assembled_example("corner-shop", tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    assert blocks("orders", "--json", env={"BLOCKS_MANIFEST": str(manifest)}).status == 0
    assert blocks("orders").one_error_line() == "error: blocks.yaml: no such file"
    assert blocks("orders", "-m", str(manifest), "--json", env={"BLOCKS_MANIFEST": "nowhere.yaml"}).status == 0


# --- --json: on every command, valid JSON on success and on error, money in one shape ---------------------------

MONEY_AS_TEXT = re.compile(r"^-?\d+(\.\d+)? [A-Z]{3}$")


def money_problems(data: Any, where: str = "$") -> list[str]:
    """Every place ``data`` writes money other than ``{"amount": <minor units>, "currency": "EUR"}``."""
    problems = []
    if isinstance(data, dict):
        if "currency" in data and "amount" in data and not isinstance(data["amount"], int):
            problems.append(f"{where}: amount {data['amount']!r} is not minor units")
        for key, value in data.items():
            if key != "config":  # a block's configuration, echoed as the manifest wrote it (and the lock holds it)
                problems += money_problems(value, f"{where}.{key}")
    elif isinstance(data, list):
        for index, value in enumerate(data):
            problems += money_problems(value, f"{where}[{index}]")
    elif isinstance(data, str) and MONEY_AS_TEXT.match(data):
        problems.append(f"{where}: money as text {data!r}")
    return problems


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_documents_json(path: str) -> None:
    (option,) = [p for p in COMMANDS[path].params if isinstance(p, click.Option) and "--json" in p.opts]
    assert option.is_flag
    assert option.help and '"error"' in option.help, "--help says errors are JSON too"


def placeholder(param: click.Parameter) -> str:
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    return "1"


def arguments_that_fail(path: str) -> list[str]:
    """``blocks PATH`` with every required argument and option given a placeholder, and a missing manifest:
    a run that must fail, whichever check catches it first."""
    command = COMMANDS[path]
    where = ["-p", "missing/platform.yaml"] if path in PLATFORM else ["-m", "missing/blocks.yaml"]
    given = [*path.split(), *where, "--json"]
    for param in command.params:
        if isinstance(param, click.Argument):
            given.append(placeholder(param))
        elif isinstance(param, click.Option) and param.required:
            given += [param.opts[0], placeholder(param)]
    if path == "demo":
        given += ["--orders", "0"]  # the demo needs no manifest; an impossible count fails it before any work
    if path == "openapi":
        given += ["-o", "missing/openapi.json"]  # needs no manifest; a file it cannot write fails it
    if path == "hooks":
        given += ["--capability", "nowhere"]  # needs no manifest; a capability that does not exist fails it
    return [a for a in given if path not in STACKLESS or a not in ("-m", "missing/blocks.yaml")]


@pytest.mark.parametrize("path", sorted(set(COMMANDS) - {"plugins", "schema"}))
def test_every_command_reports_its_error_as_json_with_json(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = blocks(*arguments_that_fail(path))
    assert outcome.status in (1, 2, 3), outcome.stdout + outcome.stderr
    error = json.loads(outcome.stdout)["error"]
    assert set(error) == {"type", "message", "exit_status"}
    assert error["exit_status"] == outcome.status
    assert error["message"] and "\n" not in error["message"]


def test_a_misspelt_option_is_reported_as_json_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = blocks("orders", "--jsn", "--json")
    assert outcome.status == 2
    assert json.loads(outcome.stdout)["error"]["type"] == "UsageError"


def ok_json(*args: str) -> Any:
    outcome = blocks(*args, "--json")
    assert outcome.status == 0, outcome.stdout + outcome.stderr
    data = json.loads(outcome.stdout)
    assert money_problems(data) == []
    return data


def test_results_are_json_with_money_in_one_shape(corner_shop: Path) -> None:
    assert ok_json("stock", "receive", "MILK-1L", "shop", "10") == {
        "sku": "MILK-1L",
        "location": "shop",
        "delta": 10,
        "on_hand": 10,
    }
    assert ok_json("stock", "adjust", "MILK-1L", "shop", "-1", "--reason", "damaged")["on_hand"] == 9
    assert ok_json("stock", "count", "MILK-1L", "shop", "8")["delta"] == -1
    placed = ok_json(
        "checkout",
        "--channel",
        "shop",
        "--item",
        "MILK-1L:2",
        "--pay",
        "card::card_number=4242424242424242",
        "--key",
        "k",
    )
    assert placed["total"] == {"amount": 258, "currency": "EUR"}
    (listed,) = ok_json("orders")
    assert listed["total"] == placed["total"]
    ok_json("refund", placed["id"], "--line", "0:1", "--key", "r")
    for command in (["stock", "levels"], ["stock", "movements"], ["audit"], ["recover"], ["members"], ["segments"]):
        ok_json(*command)
    rejected = blocks(
        "checkout", "--channel", "shop", "--item", "BREAD:1", "--pay", "card::card_number=4242424242424242",
        "--key", "k2", "--json",
    )  # fmt: skip
    assert rejected.status == 3
    assert json.loads(rejected.stdout)["error"]["type"] == "OutOfStock"


# --- answering without a stack ----------------------------------------------------------------------------------


def test_bare_blocks_prints_its_help_and_succeeds() -> None:
    """It printed the whole help folded into one `error:` line, with exit status 2."""
    outcome = blocks()
    assert outcome.status == 0, outcome.stderr
    assert outcome.stdout.startswith("Usage: blocks")
    assert "checkout" in outcome.stdout and outcome.stderr == ""


def test_reading_the_command_surface_imports_no_database_layer() -> None:
    """`blocks --help`, `--version` and a command's --help took a second importing SQLAlchemy and every
    block; the block-contributed commands are listed from their distributions' metadata instead."""
    probe = (
        "import sys, retailblocks.cli as c\n"
        "from click.testing import CliRunner\n"
        "listing = CliRunner().invoke(c.cli, ['--help']).output\n"
        "assert all(name in listing for name in ('stock', 'shipments', 'loyalty', 'stored-value')), listing\n"
        "CliRunner().invoke(c.cli, ['stock', '--help'])\n"
        "CliRunner().invoke(c.cli, ['checkout', '--help'])\n"
        "CliRunner().invoke(c.cli, ['--version'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pluggy', 'cattrs')))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_status_choices_are_the_order_statuses() -> None:
    from retailblocks.cli.order_commands import ORDER_STATUSES
    from retailblocks.model import OrderStatus

    assert set(ORDER_STATUSES) == {status.value for status in OrderStatus}


# --- payments as the payment blocks report them ----------------------------------------------------------------


def test_payments_show_their_real_status_and_a_refund_its_split(corner_shop: Path) -> None:
    """Payments read `authorized` after capture and refund: the order row's status, never updated."""
    card = "card::card_number=4242424242424242"
    assert blocks("stock", "receive", "MILK-1L", "shop", "10").status == 0
    placed = ok_json("checkout", "--channel", "shop", "--item", "MILK-1L:2", "--pay", card, "--key", "k")
    (payment,) = placed["payments"]
    assert (payment["status"], payment["captured"]) == ("captured", {"amount": 258, "currency": "EUR"})

    refunded = ok_json("refund", placed["id"], "--line", "0:1", "--key", "r")
    (payment,) = refunded["payments"]
    assert payment["status"] == "partially_refunded"
    assert payment["refunded"] == {"amount": 129, "currency": "EUR"}
    assert refunded["returned"] == {
        "amount": {"amount": 129, "currency": "EUR"},
        "payments": [{"payment": payment["id"], "method": "card", "amount": {"amount": 129, "currency": "EUR"}}],
    }
    shown = blocks("refund", placed["id"], "--line", "0:1", "--key", "r2")
    assert shown.status == 0, shown.stderr
    assert f"returned 1.29 EUR: card 1.29 EUR ({payment['id']})" in shown.stdout
    assert "refunded" in shown.stdout


def conditions_in(check: dict[str, Any]) -> list[dict[str, Any]]:
    """A segment explanation's checks, the nested ones included."""
    return [check, *(inner for child in check["checks"] for inner in conditions_in(child))]


def test_every_command_answers_in_json_on_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each walked command run once with --json on a working stack: one valid JSON document (JSON Lines for
    events), money in the one shape. A command without a run here fails the test, so none is forgotten."""
    manifest = assembled_example("lucky-coffee", tmp_path)
    monkeypatch.chdir(manifest.parent)
    (manifest.parent / "signals.jsonl").write_text(
        json.dumps({"identity": "phone:+8613800000001", "type": "social.like", "at": "2026-06-01T10:00:00Z"}) + "\n",
        encoding="utf-8",
    )
    card = "card::card_number=4242424242424242"
    ran: set[str] = set()
    found: dict[str, Any] = {}

    def run(path: str, *args: str) -> Any:
        ran.add(path)
        outcome = blocks(*path.split(), *args, "--json")
        assert outcome.status == 0, f"blocks {path}: {outcome.stdout}{outcome.stderr}"
        if path == "events":
            data: Any = [json.loads(line) for line in outcome.stdout.splitlines()]
        else:
            data = json.loads(outcome.stdout)
        # The schema describes the manifest, where money is written as text. The simulation's summary still
        # writes money as text too: it belongs to retailblocks/simulation, left to its owners (see the report).
        if path not in ("schema", "simulate", "demo", "openapi"):
            assert money_problems(data) == [], path
        return data

    # The marketplace channel settles with the marketplace as a partner, so its orders can be imported.
    text = manifest.read_text(encoding="utf-8")
    text = text.replace("    type: marketplace\n", "    type: marketplace\n    settles_with: tmall\n", 1)
    text = text.replace("partners:\n", "partners:\n  - {id: tmall, name: Tmall, type: platform}\n", 1)
    manifest.write_text(text, encoding="utf-8")
    assert blocks("assemble").status == 0
    delivery = {"kind": "delivery", "address": {"country": "CN", "region": "Shanghai"}}
    (manifest.parent / "tmall.jsonl").write_text(
        json.dumps({"order_number": "TM-1", "lines": [{"sku": "DRIP-10", "quantity": 1}], "fulfilment": delivery}),
        encoding="utf-8",
    )
    run("assemble", "--check")
    run("plugins")
    run("schema")
    run("hooks")
    run("stock receive", "DRIP-10", "xuhui", "10")
    run("stock adjust", "DRIP-10", "xuhui", "-1", "--reason", "damaged")
    run("stock count", "DRIP-10", "xuhui", "9")
    run("stock levels")
    run("stock movements")
    phone = ("--identity", "phone:+8613800000001")
    carried = run("checkout", "--channel", "store-xuhui", "--item", "DRIP-10:2", "--pay", card, *phone, "--key", "a")
    run("checkout", "--channel", "miniprogram", "--item", "DRIP-10:1", "--pay", card, "--deliver-to", "CN/Shanghai",
        "--key", "b")  # fmt: skip
    found["shipment"] = run("shipments list")[0]["id"]
    run("shipments track", found["shipment"], "shipped")
    run("refund", carried["id"], "--line", "0:1", "--key", "r")
    cancelled = run(
        "checkout", "--channel", "miniprogram", "--item", "DRIP-10:1", "--pay", card, "--deliver-to", "CN/Shanghai",
        "--key", "e",
    )  # fmt: skip
    run("cancel", cancelled["id"])
    run("orders")
    run("events")
    run("recover")
    run("audit")
    run("ingest", "signals.jsonl")
    run("stock receive", "DRIP-10", "dc-jiading", "10")  # the marketplace sells from the warehouse
    run("marketplace-orders", "tmall.jsonl", "--channel", "tmall")
    run("listings show", "tmall")
    run("listings publish")
    member = run("members")[0]["member_id"]
    run("segments")
    # `segments` takes its actions as an argument, so the walk sees one command: each action is run here.
    explained = run("segments", "explain", "worth-a-call", "phone:+8613800000001")
    assert explained["member_id"] == member
    spend = next(c for c in conditions_in(explained["check"]) if c["condition"].startswith("spend"))
    assert set(spend["figure"]) == {"amount", "currency"}
    assert run("segments", "rebuild")["orders"] >= 1
    run("campaigns")
    run("campaigns", "run", "comeback")
    run("campaigns", "report", "comeback")
    run("opt-out", member, "sms", "--source", "replied STOP")
    # `privacy` takes its action as an argument too.
    assert run("privacy", "export", member)["member"]["id"] == member
    assert (
        run("consent", member, "marketing", "withdraw", "--medium", "sms", "--source", "replied STOP")["granted"]
        is False
    )
    assert [row["purpose"] for row in run("consent", member)] == ["marketing"]
    run("settle", "--partner", "metro-mall", "--from", "2026-01-01", "--to", "2026-12-31")
    january = ("--partner", "metro-mall", "--from", "2025-01-01", "--to", "2025-01-31")  # long over
    run("statements draft", *january)
    statement = run("statements issue", *january)
    run("statements list")
    run("statements show", statement["id"])
    run("statements confirm", statement["id"])
    run("statements pay", statement["id"], "--reference", "TRX-1")
    run("stored-value issue-gift-card", "10.00", "--key", "g")
    run("stored-value top-up", member, "10.00", "--key", "t")
    run("stored-value balance", member)
    run("loyalty exchange", member, "metro-mall", "--in", "10", "--key", "x")
    run("loyalty merges", member)
    buy = ("checkout", "--channel", "store-xuhui", "--item", "DRIP-10:1", "--pay", card)
    run(*buy, "--identity", "email:c@example.cn", "--key", "c")
    run(*buy, *phone, "--identity", "email:c@example.cn", "--key", "d")
    (merge,) = run("loyalty merges", member)
    run("loyalty unmerge", merge["id"])
    assert run("privacy", "erase", member, "--source", "ticket 7")["member_id"] == member
    # Nothing timed out, so nothing is sent (tests/http/test_block_routes.py delivers to a receiver).
    assert run("sandbox-card notify", "--url", "http://127.0.0.1:9") == {"delivered": [], "failed": {}}
    run("simulate", "-m", str(copy_example("lucky-coffee", tmp_path / "fresh")), "--orders", "3")
    run("demo", "--orders", "3", "--workers", "1")
    assert run("openapi")["openapi"].startswith("3.1")
    assert any(entry["name"] == "sandbox-card" for entry in run("catalogue"))
    run("add", "sandbox-card", "--id", "second-card", "--no-install")
    run("remove", "second-card")
    written = run("new", "qr-wallet", "--capability", "payment", "--directory", str(tmp_path / "new"))
    assert written["class"] == "QrWallet"
    # The same merchant as the one merchant of a platform (its storage then in the platform's directory).
    (manifest.parent / "platform.yaml").write_text(
        "platform: {id: mall, name: Mall}\ndatabases:\n  local: {directory: .platform}\n  spare: {directory: .spare}\n"
        "merchants:\n  - {id: lucky-coffee, manifest: blocks.yaml, database: local}\n",
        encoding="utf-8",
    )
    assert run("platform check")[0]["id"] == "lucky-coffee"
    assert run("platform assemble")[0]["status"] == "active"
    assert run("platform pause", "lucky-coffee")["status"] == "paused"
    assert run("platform resume", "lucky-coffee")["status"] == "active"
    assert run("platform add", "lucky-coffee")["status"] == "active"
    assert run("platform list")[0]["blocks"]
    assert run("platform move", "lucky-coffee", "--to", "spare", "--settle", "0")["to"] == "spare"
    assert run("platform settle", "--period", "2026-11")["statements"][0]["total"]["amount"] == 0
    assert run("platform remove", "lucky-coffee", "--archive", "archive")["rows"]["orders"] == 0

    # `blocks serve` runs until it is stopped: tests/http/test_serve.py runs it, as a server.
    assert ran == set(COMMANDS) - {"serve"}, f"commands never run here: {sorted(set(COMMANDS) - ran)}"
