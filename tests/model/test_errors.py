"""The error tree: every class named in errors.py's picture, and every error surviving pickling."""

from __future__ import annotations

import pickle
import threading

import pytest

from retailblocks import errors
from retailblocks.manifest.errors import ManifestError

CLASSES = sorted(
    (
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.RetailBlocksError)
    ),
    key=lambda cls: cls.__name__,
)

EXAMPLES: dict[type[BaseException], BaseException] = {
    errors.AssemblyError: errors.AssemblyError("cannot", block="b", distribution="d"),
    errors.OutOfStock: errors.OutOfStock("none left", sku="A", requested=2, available=1),
    errors.PaymentDeclined: errors.PaymentDeclined("no", reason="insufficient_funds"),
    errors.FlowStuck: errors.FlowStuck("stuck", saga_id="s", step="capture", reason="r"),
    errors.BlockFailure: errors.BlockFailure("card", "payment_capture", ValueError("gateway said no")),
    ManifestError: ManifestError("bad value", file="blocks.yaml"),
}


def test_the_tree_in_the_docstring_names_every_error() -> None:
    tree = errors.__doc__ or ""
    for cls in CLASSES:
        assert cls.__name__ in tree, cls.__name__


@pytest.mark.parametrize("cls", [*CLASSES, ManifestError], ids=lambda cls: cls.__name__)
def test_every_error_survives_pickling(cls: type[BaseException]) -> None:
    error = EXAMPLES.get(cls) or cls("what went wrong")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == str(error)
    assert {k: repr(v) for k, v in vars(copy).items()} == {k: repr(v) for k, v in vars(error).items()}


def test_a_block_failure_wrapping_what_cannot_pickle_keeps_its_words() -> None:
    class HoldsALock(Exception):
        def __init__(self) -> None:
            super().__init__("busy")
            self.lock = threading.Lock()

    failure = errors.BlockFailure("inventory", "inventory_reserve", HoldsALock())
    copy = pickle.loads(pickle.dumps(failure))
    assert str(copy) == str(failure) and copy.block == "inventory" and copy.hook == "inventory_reserve"
    assert "HoldsALock: busy" in str(copy.error)
