"""``blocks serve platform.yaml``: every merchant from one set of worker processes, pauses seen by all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from retailblocks.platform.operations import assemble_platform, pause_merchant, resume_merchant
from tests.platform.conftest import ENV, NORTH_WEB, SOUTH_WEB, write_platform


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    platform = write_platform(tmp_path, "sqlite")
    assemble_platform(platform, environ=ENV)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "retailblocks.cli", "serve", "-m", str(platform), "--port", str(port), "--workers", "2"],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert server.poll() is None, server.communicate(timeout=5)
            time.sleep(0.3)
        else:
            pytest.fail("blocks serve did not become ready in 90 s")
        yield base, platform
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0


def _statuses(base: str, path: str, key: str, times: int = 8) -> set[int]:
    # Several requests, so that both workers (each with its own cache of the statuses) answer some.
    return {
        httpx2.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code
        for _ in range(times)
    }


def test_every_worker_serves_every_merchant_and_sees_a_pause_without_a_restart(served: tuple[str, Path]) -> None:
    base, platform = served
    assert _statuses(base, "/m/north/store/catalog", NORTH_WEB) == {200}
    assert _statuses(base, "/m/south/store/catalog", SOUTH_WEB) == {200}
    assert _statuses(base, "/m/south/store/catalog", NORTH_WEB) == {401}
    pause_merchant(platform, "south", environ=ENV)
    deadline = time.monotonic() + 30
    while _statuses(base, "/m/south/store/catalog", SOUTH_WEB) != {503}:
        assert time.monotonic() < deadline, "the pause did not reach every worker"
        time.sleep(0.5)
    assert _statuses(base, "/m/north/store/catalog", NORTH_WEB) == {200}
    resume_merchant(platform, "south", environ=ENV)
    deadline = time.monotonic() + 30
    while _statuses(base, "/m/south/store/catalog", SOUTH_WEB) != {200}:
        assert time.monotonic() < deadline, "the resume did not reach every worker"
        time.sleep(0.5)
