"""A document encoded in parts reads back as the whole document, however its values were replaced."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from retailblocks.storage.json_text import SettledJson

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["a", "b", "c", "d", "e"])


@given(
    st.lists(st.dictionaries(keys, values, max_size=5), min_size=1, max_size=4),
    st.lists(keys, max_size=3, unique=True),
    st.booleans(),
)
def test_every_encoding_reads_back_as_the_document(
    documents: list[dict[str, Any]], settled: list[str], keep_entries: bool
) -> None:
    encoder = SettledJson(settled, keep_entries=keep_entries)
    for document in documents:  # each a replacement of the one before: new objects throughout
        assert json.loads(encoder.encode(document)) == document


def test_entries_and_settled_values_are_kept_only_while_they_are_the_same_objects() -> None:
    encoder = SettledJson(["plan"], keep_entries=True)
    authorization = {"id": "ch_1", "status": "authorized"}
    document: dict[str, Any] = {"plan": [1], "authorizations": {"0": authorization}, "done": []}
    assert json.loads(encoder.encode(document)) == document
    document["authorizations"]["1"] = {"id": "ch_2", "status": "authorized"}  # the container grows
    document["done"].append("authorize")
    document["plan"] = [2]  # a settled value replaced
    assert json.loads(encoder.encode(document)) == document
    document["authorizations"]["0"] = {"id": "ch_1", "status": "voided"}  # an entry replaced
    assert json.loads(encoder.encode(document)) == document
    assert json.loads(encoder.encode({"numbers": {1: "one"}})) == {"numbers": {"1": "one"}}
