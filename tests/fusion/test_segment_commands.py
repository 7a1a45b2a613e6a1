"""``blocks segments explain|rebuild`` and ``GET /admin/segments/{id}/explain``: one function answers both, and
bad input is one line (exit status 2) or a problem document."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from retailblocks.assembly.lockfile import write_lock
from retailblocks.cli import cli
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.http import create_app
from retailblocks.stack import Stack, assemble
from tests.fusion.test_segment_language import TEXT, deliver, identities_of, identity_text
from tests.helpers import cart, receive, write_manifest
from tests.http.conftest import ADMIN_KEY, API_SECTION, KEYS_ENV, bearer

ADMIN = bearer(ADMIN_KEY)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Stack]]:
    manifest = write_manifest(tmp_path, database_url, textwrap.dedent(TEXT) + API_SECTION)
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with assemble(manifest, clock=clock, ids=RandomIds(0), environ=KEYS_ENV) as stack:
        write_lock(stack.plan)  # operator commands open only an assembled stack
        receive(stack, dict.fromkeys(stack.catalog, 20), locations=("dc", "store-a"))
        stack.checkout(cart(("TEA", 2), channel="store-a", identities=identities_of(3)), key="a")
        stack.checkout(cart(("MUG", 1), channel="web", identities=identities_of(4)), key="b")
        deliver(stack)
        with TestClient(create_app(stack), raise_server_exceptions=False) as client:
            yield client, stack


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner(env=KEYS_ENV).invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_command_and_the_route_explain_alike(served: tuple[TestClient, Stack]) -> None:
    client, stack = served
    manifest = str(stack.manifest.path)
    status, out, err = run("segments", "-m", manifest, "explain", "store-never-online", identity_text(3), "--json")
    assert status == 0, err
    by_command = json.loads(out)
    response = client.get(
        "/admin/segments/store-never-online/explain", params={"member": identity_text(3)}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    by_route = response.json()
    # The command runs on the wall clock, the served stack on the test's: only the moment differs.
    assert {**by_command, "as_of": None} == {**by_route, "as_of": None}
    assert by_route["member"] is True
    bought, never_online = by_route["check"]["checks"]
    assert (bought["condition"], bought["figure"], bought["threshold"], bought["holds"]) == (
        "orders ever, channel store-a",
        1,
        "at least 1",
        True,
    )
    assert never_online["condition"] == "not" and never_online["holds"] is True

    status, out, _ = run("segments", "-m", manifest, "explain", "store-never-online", identity_text(3))
    assert status == 0
    assert "is in segment store-never-online" in out and "orders ever, channel store-a" in out


def test_rebuild_from_the_command_and_the_route_reports_no_difference(served: tuple[TestClient, Stack]) -> None:
    client, stack = served
    status, out, err = run("segments", "-m", str(stack.manifest.path), "rebuild", "--json")
    assert status == 0, err
    assert json.loads(out)["differences"] == 0
    assert json.loads(out)["orders"] == 2
    response = client.post("/admin/segments/rebuild", headers={**ADMIN, "Idempotency-Key": "r-1"}, json={})
    assert response.status_code == 200, response.text
    assert response.json()["differences"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("explain", "big-spendrs", "mem_x"), "unknown segment 'big-spendrs'; did you mean 'big-spenders'?"),
        (("explain", "big-spenders", "mem_nobody"), "unknown member 'mem_nobody'"),
        (("explain", "big-spenders", "fax:1"), "unknown identity kind 'fax'"),
        (("explain", "big-spenders"), "needs the segment's id and the member"),
        (("rebuild", "extra"), "unexpected arguments: extra"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    served: tuple[TestClient, Stack], args: tuple[str, ...], message: str
) -> None:
    _, stack = served
    status, _, err = run("segments", "-m", str(stack.manifest.path), *args)
    assert status == 2, err
    assert message in err
    assert "Traceback" not in err


def test_the_route_answers_an_unknown_member_with_404(served: tuple[TestClient, Stack]) -> None:
    client, _ = served
    response = client.get("/admin/segments/big-spenders/explain", params={"member": "mem_nobody"}, headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "unknown member 'mem_nobody'" in response.json()["detail"]
