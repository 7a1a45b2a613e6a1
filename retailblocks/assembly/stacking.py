"""The marketing stacking policy of a stack: in which order the marketing blocks' adjustments apply,
which never combine with the others, and which compete so that only the best applies.

It is resolved once at assembly from the manifest's ``routing.marketing`` and the blocks' own
``exclusive`` declarations, printed by ``blocks assemble``, written to the lock, and applied by the
pricing flow (retailblocks.flows.capabilities.price_adjustments). docs/marketing-stacking.md explains it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from retailblocks.manifest import Manifest, ManifestError, SourcePosition
from retailblocks.manifest.stacking import MarketingStacking

#: Where the order came from: what the lock and ``blocks assemble`` say.
ORDER_FROM_MANIFEST = "routing.marketing.order"
ORDER_FROM_BLOCKS = "default (the order of blocks:)"


@attrs.frozen
class StackingPolicy:
    """How the marketing blocks' adjustments combine.

    ``order`` lists every marketing block once, in the order they apply: each is asked with the
    adjustments kept before it. A group of ``best_of`` is asked at its first member's place, every member
    with the same adjustments before it, and only the one giving the largest discount is kept. An
    ``exclusive`` block is asked alone and competes with everything the others keep together: the larger
    discount applies. Ties go to what comes first in ``order``.
    """

    order: tuple[str, ...] = ()
    #: exclusive block → who made it so ("block", "manifest" or "block, manifest")
    exclusive: Mapping[str, str] = attrs.field(factory=dict)
    best_of: tuple[tuple[str, ...], ...] = ()
    order_from: str = ORDER_FROM_BLOCKS

    def stages(self) -> list[tuple[str, ...]]:
        """The combinable blocks' steps in order: a block alone, or a best_of group at its first member."""
        group_of = {member: group for group in self.best_of for member in group}
        stages: list[tuple[str, ...]] = []
        for block_id in self.order:
            if block_id in self.exclusive:
                continue
            group = group_of.get(block_id, (block_id,))
            if group not in stages:
                stages.append(group)
        return stages

    def covering(self, blocks: Sequence[str]) -> StackingPolicy:
        """This policy with any of ``blocks`` it does not order (none, in an assembled stack) after the
        ones it does, so no marketing block is ever silently skipped."""
        missing = tuple(block_id for block_id in blocks if block_id not in self.order)
        return attrs.evolve(self, order=self.order + missing) if missing else self

    def describe(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "order_from": self.order_from,
            "exclusive": dict(sorted(self.exclusive.items())),
            "best_of": [list(group) for group in self.best_of],
        }


def resolve_stacking(
    manifest: Manifest, marketing_blocks: Sequence[str], declared_exclusive: Mapping[str, bool]
) -> StackingPolicy:
    """The policy for ``marketing_blocks`` (the blocks implementing marketing_adjustments, in their default
    order); ManifestError where ``routing.marketing`` names a block that is not one, or leaves one out."""
    written = manifest.routing.marketing
    known = list(marketing_blocks)
    _check_marketing(manifest, written, "order", written.order or (), known)
    _check_marketing(manifest, written, "exclusive", written.exclusive, known)
    for index, group in enumerate(written.best_of):
        _check_marketing(manifest, written, f"best_of[{index}]", group, known)
    order, order_from = tuple(known), ORDER_FROM_BLOCKS
    if written.order is not None:
        missing = [block_id for block_id in known if block_id not in written.order]
        if missing:
            raise ManifestError.at(
                _where(manifest, written, "order"),
                f"routing.marketing.order leaves out the marketing block(s) {', '.join(repr(m) for m in missing)}; "
                f"list every marketing block once, in the order they apply (marketing blocks: {', '.join(known)})",
            )
        order, order_from = written.order, ORDER_FROM_MANIFEST
    exclusive: dict[str, str] = {}
    for block_id in order:
        said = ["block"] if declared_exclusive.get(block_id, False) else []
        if block_id in written.exclusive:
            said.append("manifest")
        if said:
            exclusive[block_id] = ", ".join(said)
    for index, group in enumerate(written.best_of):
        for position, member in enumerate(group):
            if member in exclusive:
                raise ManifestError.at(
                    _where(manifest, written, f"best_of[{index}][{position}]"),
                    f"block {member!r} declares itself exclusive, so it already competes alone with everything "
                    "else; leave it out of best_of",
                )
    return StackingPolicy(order=order, exclusive=exclusive, best_of=written.best_of, order_from=order_from)


def _check_marketing(
    manifest: Manifest, written: MarketingStacking, where: str, block_ids: Sequence[str], known: list[str]
) -> None:
    for index, block_id in enumerate(block_ids):
        if block_id not in known:
            raise ManifestError.at(
                _where(manifest, written, f"{where}[{index}]"),
                f"block {block_id!r} is not a marketing block (it does not implement marketing_adjustments); "
                f"marketing blocks: {', '.join(known) or 'none'}",
            )


def _where(manifest: Manifest, written: MarketingStacking, key: str) -> SourcePosition:
    return written.position_of(key) or SourcePosition(str(manifest.path))
