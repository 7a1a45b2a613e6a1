"""Helpers for the manifest tests: write a manifest to a temporary directory, load it, check
errors."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from retailblocks.manifest import Manifest, ManifestError, load_manifest

VALID = """\
version: 1
merchant:
  id: lucky-coffee
  name: Lucky Coffee
  currency: CNY
channels:
  - id: miniprogram
    type: online
  - id: store-xuhui
    type: store
    location: xuhui
blocks:
  - use: sql-inventory
    id: inventory
    version: ">=0.1,<1"
    config:
      reservation_ttl: 15m
  - use: sandbox-payment
    config:
      secret_key: ${SANDBOX_PAYMENT_KEY}
"""

ENVIRON = {"SANDBOX_PAYMENT_KEY": "sk_test_hunter2"}

Load = Callable[..., Manifest]
Fails = Callable[..., ManifestError]


@pytest.fixture
def valid() -> str:
    """A small valid manifest; tests derive bad ones from it with ``str.replace``."""
    return VALID


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str | bytes], Path]:
    """Write a manifest (dedented when text) to ``tmp_path/blocks.yaml`` and return its path."""

    def _write(content: str | bytes, name: str = "blocks.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    return _write


@pytest.fixture
def load(write: Callable[[str | bytes], Path]) -> Load:
    def _load(content: str | bytes, environ: Mapping[str, str] | None = None) -> Manifest:
        return load_manifest(write(content), environ=ENVIRON if environ is None else environ)

    return _load


@pytest.fixture
def fails(write: Callable[[str | bytes], Path]) -> Fails:
    """Load a manifest that must fail; check the error's shape and return it.

    ``at`` is ``(line, column)`` or ``None`` for whole-file errors; ``path`` the document path;
    ``says`` substrings of the problem.
    """

    def _fails(
        content: str | bytes,
        *,
        at: tuple[int, int] | None,
        path: str = "",
        says: tuple[str, ...] | str = (),
        environ: Mapping[str, str] | None = None,
    ) -> ManifestError:
        manifest_path = write(content)
        with pytest.raises(ManifestError) as caught:
            load_manifest(manifest_path, environ=ENVIRON if environ is None else environ)
        error = caught.value
        message = str(error)
        assert "\n" not in message, message
        assert error.file == str(manifest_path)
        assert message.startswith(str(manifest_path)), message
        if at is None:
            assert error.line is None, message
        else:
            assert (error.line, error.column) == at, message
            assert message.startswith(f"{manifest_path}:{at[0]}:{at[1]}: "), message
        assert error.doc_path == path, message
        if path:
            assert f": {path}: " in message, message
        for text in (says,) if isinstance(says, str) else says:
            assert text in message, message
        assert error.exit_status == 2
        return error

    return _fails
