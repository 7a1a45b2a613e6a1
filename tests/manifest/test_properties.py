"""Whatever the bytes, loading a manifest raises ManifestError and nothing else."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retailblocks.manifest import ManifestError, load_manifest, parse_manifest

# fmt: off
from_valid_parts = st.lists(
    st.sampled_from(
        [
            "version: 1\n", "version: ", "merchant:\n", "  id: m\n", "  name: M\n",
            "  currency: CNY\n", "channels:\n", "  - id: web\n", "    type: online\n",
            "    type: store\n", "blocks:\n", "  - use: x\n", "    version: '>=1'\n",
            "    config:\n",
            "      ttl: ${TTL}\n", "      key: $${X}\n", "&a ", "*a", "<<: ", "- ", "[", "]", "{",
            "}", ": ", ", ", "!!python/object:os.system ", "!x ", "'", '"', "\t", "\n",
            "#", "---\n",
            "? ", "|\n", ">\n", "\\", "\x00", "\ufeff", "é", "1", "-1", "0x", "1e9", "null", "~",
            "yes", "database: mysql://x\n", "database: sqlite:///:memory:\n",
            "catalog:\n  - {sku: a, title: A, price: 1 CNY}\n", "routing: {payment: {card: x}}\n",
            "partners: [{id: m, name: M, type: brand}]\n",
        ]
    ),
    max_size=40,
).map("".join)
# fmt: on


def _check(data: bytes | str) -> None:
    error = _failure(lambda: parse_manifest(data, path="fuzz.yaml", environ={"TTL": "15m"}))
    if error is not None:
        message = str(error)
        assert "\n" not in message
        assert message.startswith("fuzz.yaml")
        assert not _internal(error), message


def _failure(load: Callable[[], object]) -> ManifestError | None:
    try:
        load()
    except ManifestError as error:
        return error
    return None


def _internal(error: ManifestError) -> bool:
    """Whether the loader's catch-all turned a bug of ours into the error: it alone chains the exception it
    caught. The words "internal error" are no test, as a message may quote input holding them (hypothesis
    draws the project's own string constants, 'internal error' among them)."""
    return error.__cause__ is not None or str(error).partition(": ")[2].startswith("internal error")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _check(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(from_valid_parts)
def test_yaml_ish_text(text):
    _check(text)
    _check(text.encode("utf-8", errors="surrogatepass"))


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_random_text(text):
    _check(text)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200))
def test_random_files(data):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "blocks.yaml"
        path.write_bytes(data)
        error = _failure(lambda: load_manifest(path, environ={}))
        if error is not None:
            assert str(error).startswith(str(path))
            assert not _internal(error), str(error)


VALID_SAMPLE = """\
version: 1
merchant: {id: lucky-coffee, name: Lucky Coffee, currency: CNY}
database: sqlite:///.blocks/shop.db
channels:
  - {id: web, type: online}
  - {id: store-xuhui, type: store, location: xuhui}
catalog:
  - {sku: latte, title: Latte, price: "18.00 CNY", weight: 350g, channels: [web]}
blocks:
  - use: sql-inventory
    id: inventory
    version: ">=0.1,<1"
    config: {reservation_ttl: 15m}
routing: {payment: {card: inventory}}
partners: [{id: tmall, name: Tmall, type: platform}]
"""


@settings(max_examples=500)
@given(
    st.integers(min_value=0, max_value=len(VALID_SAMPLE)),
    st.integers(min_value=0, max_value=20),
    st.text(alphabet="ab1:-[]{}\n '\"&*!$%#,.", max_size=8),
)
def test_mutated_valid_manifests(start, length, insert):
    _check(VALID_SAMPLE[:start] + insert + VALID_SAMPLE[start + length :])


def test_the_unmutated_sample_is_valid():
    assert parse_manifest(VALID_SAMPLE, path="fuzz.yaml", environ={}).blocks[0].id == "inventory"
