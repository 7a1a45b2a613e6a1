"""The operator commands: tables and JSON, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from retailblocks.assembly.lockfile import write_lock
from retailblocks.cli import cli
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.fusion.test_data_fused import write_signals
from tests.helpers import cart


@pytest.fixture
def manifest(stack: Stack) -> str:
    write_lock(stack.plan)  # operator commands open only an assembled stack
    stack.checkout(cart(("TEA", 1), channel="store-a", identities=(Identity("phone", "+8613800000001"),)), key="a")
    stack.checkout(cart(("BEANS", 1), identities=(Identity("phone", "+8613800000001"),), coupons=("MALL8",)), key="b")
    return str(stack.manifest.path)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_members_segments_campaigns_and_settle_answer_in_json(manifest: str) -> None:
    status, out, _ = run("members", "-m", manifest, "--identity", "phone:+8613800000001", "--json")
    member = json.loads(out)
    assert status == 0
    assert member["orders"] == 2
    assert len(member["timeline"]) >= 4
    status, out, _ = run("segments", "-m", manifest, "--json")
    assert status == 0
    assert json.loads(out)["store-regulars"]["count"] == 1
    status, out, _ = run("campaigns", "-m", manifest, "run", "comeback", "--json")
    assert status == 0
    assert json.loads(out)["reach"] == 1
    status, out, _ = run("campaigns", "-m", manifest, "report", "comeback", "--json")
    assert status == 0
    assert json.loads(out)["redemptions"] == 0
    status, out, _ = run(
        "settle", "-m", manifest, "--partner", "metro", "--from", "2026-01-01", "--to", "2026-12-31", "--json"
    )
    settlement = json.loads(out)
    assert status == 0
    assert settlement["net"] == {"amount": 800, "currency": "CNY"}
    assert len(settlement["lines"]) == 1
    status, out, _ = run("members", "-m", manifest)
    assert status == 0
    assert "Members (1)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("members", "-m", "{m}", "--member", "mem_nobody"), "unknown member 'mem_nobody'"),
        (("members", "-m", "{m}", "--identity", "fax:1"), "unknown identity kind 'fax'"),
        (("segments", "-m", "{m}", "--segment", "regulars"), "unknown segment 'regulars'"),
        (("campaigns", "-m", "{m}", "report", "nope"), "unknown campaign 'nope'"),
        (("settle", "-m", "{m}", "--partner", "metro", "--from", "2026-13-01", "--to", "2026-12-31"), "--from expects"),
        (("settle", "-m", "{m}", "--partner", "metro", "--from", "2026-02-01", "--to", "2026-01-01"), "ends"),
        (("ingest", "-m", "{m}", "missing.jsonl"), "no such file"),
        (("ingest", "-m", "{m}", "{m}", "--format", "csv"), "the CSV header lacks"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(manifest: str, args: tuple[str, ...], message: str) -> None:
    status, _, err = run(*(a.replace("{m}", manifest) for a in args))
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_ingest_reports_bad_lines_by_number_and_keeps_the_good_ones(manifest: str, tmp_path: Path) -> None:
    path = str(write_signals(tmp_path / "signals.jsonl"))
    status, out, err = run("ingest", "-m", manifest, path, "--json")
    assert status == 2
    assert json.loads(out)["added"] == 2
    assert f"{path}:2:" in err
    assert f"{path}:7:" in err
    status, out, _ = run("ingest", "-m", manifest, path, "--json")
    assert status == 2
    assert json.loads(out)["added"] == 0
    assert json.loads(out)["duplicates"] == 2


def test_human_output_shows_no_python_reprs_and_money_with_its_currency(manifest: str) -> None:
    """The channel mix printed as a dict, event payloads as dicts, timeline amounts as bare minor units."""
    status, listed, _ = run("members", "-m", manifest)
    assert status == 0
    status, one, _ = run("members", "-m", manifest, "--identity", "phone:+8613800000001")
    assert status == 0
    status, events, _ = run("events", "-m", manifest)
    assert status == 0
    for out in (listed, one, events):
        assert "{'" not in out and "': " not in out, out
    assert "channel mix: store-a×1" in one
    timeline = one[one.index("Timeline") :]
    assert " CNY" in timeline
