"""A served worker sets what start-up left alive aside from the garbage collector; an embedded app does not."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from retailblocks.http import create_app
from retailblocks.stack import Stack
from tests.helpers import write_manifest


def test_only_an_app_told_to_freezes_what_start_up_left_alive(stack: Stack) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(stack)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() == 0, "an app embedded in a process of its own leaves the collector alone"
        with TestClient(create_app(stack, freeze_after_start=True)) as client:
            assert gc.get_freeze_count() > 1000, "the modules, the stack and the app are set aside"
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()  # (the rest of the test session collects as before)


def test_blocks_serve_workers_ask_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> None:
    from retailblocks.http import server

    asked: dict[str, Any] = {}

    def fake_create_app(**options: Any) -> Any:
        asked.update(options)
        return object()

    monkeypatch.setattr(server, "create_app", fake_create_app)
    monkeypatch.setenv(server.SERVE_MANIFEST_ENV, str(write_manifest(tmp_path, database_url)))
    monkeypatch.delenv(server.SERVE_THREADS_ENV, raising=False)
    server.app()
    assert asked["freeze_after_start"] is True
