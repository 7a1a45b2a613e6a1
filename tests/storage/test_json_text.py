"""A document encoded in parts reads back as the whole document, however its values were replaced."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retailblocks.storage.json_text import SettledJson, dumps, json_encoder

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["a", "b", "c", "d", "e"])
# What an event payload or a request may hold: any JSON, non-ASCII text, floats, keys of several types,
# and values JSON cannot hold (written with ``default``).
wide_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.dates()
    | st.decimals(allow_nan=False, places=2)
)
wide_values = st.recursive(
    wide_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(wide_values, st.booleans(), st.sampled_from([(", ", ": "), (",", ":")]))
def test_a_kept_encoder_writes_the_text_json_dumps_writes(
    value: Any, sort_keys: bool, separators: tuple[str, str]
) -> None:
    # The text is hashed into idempotency records and compared byte for byte: it must not drift.
    options: dict[str, Any] = {"sort_keys": sort_keys, "separators": separators}
    try:
        expected = json.dumps(value, default=str, **options)
    except TypeError:  # keys of mixed types cannot be sorted: both must refuse
        with pytest.raises(TypeError):
            json_encoder(default=str, **options)(value)
        return
    encode = json_encoder(default=str, **options)
    assert encode(value) == expected
    assert encode(value) == expected  # nothing kept from one call to the next


def test_the_kept_encoder_refuses_what_json_cannot_hold_and_goes_on_working() -> None:
    with pytest.raises(TypeError, match="Decimal is not JSON serializable"):
        dumps({"price": Decimal("1.50")})
    with pytest.raises(TypeError, match="date is not JSON serializable"):
        dumps([1, {"day": date(2026, 3, 2)}])
    assert dumps({"a": [1, 2.5, None, True, "\u00e9"]}) == json.dumps({"a": [1, 2.5, None, True, "\u00e9"]})


@given(
    st.lists(st.dictionaries(keys, values, max_size=5), min_size=1, max_size=4),
    st.lists(keys, max_size=3, unique=True),
)
def test_every_encoding_reads_back_as_the_document(documents: list[dict[str, Any]], settled: list[str]) -> None:
    encoder = SettledJson(settled)
    for document in documents:  # each a replacement of the one before: new objects throughout
        assert json.loads(encoder.encode(document)) == document


def test_settled_values_are_kept_only_while_they_are_the_same_objects() -> None:
    encoder = SettledJson(["plan"])
    authorization = {"id": "ch_1", "status": "authorized"}
    document: dict[str, Any] = {"plan": [1], "authorizations": {"0": authorization}, "done": []}
    assert json.loads(encoder.encode(document)) == document
    document["authorizations"]["1"] = {"id": "ch_2", "status": "authorized"}  # the container grows
    document["done"].append("authorize")
    document["plan"] = [2]  # a settled value replaced
    assert json.loads(encoder.encode(document)) == document
    document["authorizations"]["0"] = {"id": "ch_1", "status": "voided"}  # an entry replaced
    assert json.loads(encoder.encode(document)) == document
    document["authorizations"]["0"]["status"] = "refunded"  # only settled values must not change in place
    assert json.loads(encoder.encode(document)) == document
    assert json.loads(encoder.encode({"numbers": {1: "one"}})) == {"numbers": {"1": "one"}}
