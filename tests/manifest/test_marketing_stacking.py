"""``routing.marketing``, the stacking policy of marketing blocks: read with its positions, every mistake
named at file:line:column, and described by the JSON Schema as the loader reads it."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from retailblocks.manifest import manifest_json_schema

# Three marketing-looking blocks after the two of the VALID manifest (lines 21–23; the policy starts on
# line 26); which are marketing blocks is only known at assembly (tests/flows/test_marketing_stacking.py).
BLOCKS = "  - use: promotions\n  - use: flash-sale\n  - use: member-prices\n"


def with_policy(valid: str, policy: str) -> str:
    return valid + BLOCKS + "routing:\n  marketing:\n" + "".join(f"    {line}\n" for line in policy.splitlines())


def test_the_policy_is_read_with_where_each_id_was_written(valid, load):
    manifest = load(
        with_policy(
            valid,
            "order: [flash-sale, promotions, member-prices]\nexclusive: [flash-sale]\n"
            "best_of: [[promotions, member-prices]]",
        )
    )
    stacking = manifest.routing.marketing
    assert stacking.written
    assert stacking.order == ("flash-sale", "promotions", "member-prices")
    assert stacking.exclusive == ("flash-sale",)
    assert stacking.best_of == (("promotions", "member-prices"),)
    position = stacking.position_of("best_of[0][1]")
    assert position is not None and (position.line, position.doc_path) == (28, "routing.marketing.best_of[0][1]")


def test_without_a_policy_nothing_is_written_and_the_order_is_left_to_the_default(valid, load):
    stacking = load(valid + BLOCKS).routing.marketing
    assert not stacking.written and stacking.order is None and stacking.exclusive == () and stacking.best_of == ()


@pytest.mark.parametrize(
    ("policy", "at", "path", "says"),
    [
        ("ordre: [promotions]", (26, 5), "routing.marketing.ordre", "did you mean 'order'?"),
        ("order: [promotion]", (26, 13), "routing.marketing.order[0]", "no block with id 'promotion'; did you mean"),
        (
            "order: [promotions, promotions]",
            (26, 25),
            "routing.marketing.order[1]",
            "duplicate block id 'promotions'",
        ),
        ("order: promotions", (26, 12), "routing.marketing.order", "expected a list"),
        ("best_of: [[promotions]]", (26, 15), "routing.marketing.best_of[0]", "at least 2 blocks"),
        (
            "exclusive: [flash-sale]\nbest_of: [[flash-sale, promotions]]",
            (27, 16),
            "routing.marketing.best_of[0][0]",
            "'flash-sale' is exclusive",
        ),
        (
            "best_of: [[flash-sale, promotions], [member-prices, promotions]]",
            (26, 57),
            "routing.marketing.best_of[1][1]",
            "already in best_of[0]",
        ),
    ],
)
def test_a_wrong_policy_is_named_where_it_is_written(valid, fails, policy, at, path, says):
    fails(with_policy(valid, policy), at=at, path=path, says=says)


def test_the_json_schema_describes_the_policy(valid):
    section = manifest_json_schema({})["properties"]["routing"]["properties"]["marketing"]
    validator = jsonschema.Draft202012Validator(section)
    document = yaml.safe_load(with_policy(valid, "order: [promotions]\nbest_of: [[promotions, flash-sale]]"))
    assert list(validator.iter_errors(document["routing"]["marketing"])) == []
    for wrong in ({"ordre": []}, {"best_of": [["promotions"]]}, {"exclusive": "promotions"}, {"order": ["a", "a"]}):
        assert not validator.is_valid(wrong), wrong
