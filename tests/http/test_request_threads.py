"""``create_app(threads=N)`` / ``blocks serve --threads N``: how many requests one process runs at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from retailblocks.cli import cli as blocks
from retailblocks.http import create_app
from retailblocks.stack import Stack


def _second_ran_while_first_waited(stack: Stack, threads: int) -> bool:
    """Send two requests at once to a route that runs in the thread pool: the first waits (up to a second)
    for the second to start. True when the second started while the first was still running."""
    app = create_app(stack, threads=threads)
    second_started = threading.Event()
    first_in = threading.Event()

    @app.get("/probe/{which}")
    def probe(which: str) -> dict[str, bool]:
        if which == "first":
            first_in.set()
            return {"overlapped": second_started.wait(timeout=1.0)}
        second_started.set()
        return {"overlapped": False}

    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.get, "/probe/first")
        assert first_in.wait(timeout=10), "the first request never started"
        second = pool.submit(client.get, "/probe/second")
        overlapped = bool(first.result(timeout=30).json()["overlapped"])
        assert second.result(timeout=30).status_code == 200
    return overlapped


def test_one_thread_runs_one_request_at_a_time_and_two_run_two(stack: Stack) -> None:
    assert not _second_ran_while_first_waited(stack, threads=1)
    assert _second_ran_while_first_waited(stack, threads=2)


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_serve_refuses_a_thread_count_that_is_not_a_positive_number(value: str) -> None:
    result = CliRunner().invoke(blocks, ["serve", "--threads", value])
    assert result.exit_code == 2
    assert "--threads" in result.output
    assert "Traceback" not in result.output
