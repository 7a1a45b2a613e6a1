"""The manifest's ``routing.marketing`` section: how several marketing blocks' adjustments combine.

::

    routing:
      marketing:
        order: [flash-sale, promotions, member-prices]   # the order they apply in; each sees what came before
        exclusive: [flash-sale]        # its adjustments never combine: it or the others, the larger discount
        best_of:                       # groups within which only the block giving the most applies
          - [promotions, member-prices]

Everything is optional; what is left out has a stated default: the order of the ``blocks:`` list, no
block exclusive unless it declares itself so (``Block.exclusive``), no groups. Which blocks are marketing
blocks is only known at assembly, which checks that ``order`` names each of them once.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from retailblocks.manifest import readers
from retailblocks.manifest.errors import ManifestError, SourcePosition
from retailblocks.manifest.nodes import Node

_KEYS = ("order", "exclusive", "best_of")


@attrs.frozen
class MarketingStacking:
    """``routing.marketing`` as written: block ids, and where each was written (``order[1]``,
    ``best_of[0][1]``, and the keys themselves) for the errors assembly finds later."""

    #: None when the manifest leaves the order to the default (the order of ``blocks:``).
    order: tuple[str, ...] | None = None
    exclusive: tuple[str, ...] = ()
    best_of: tuple[tuple[str, ...], ...] = ()
    #: Whether the manifest has a ``routing.marketing`` section at all.
    written: bool = False
    positions: Mapping[str, SourcePosition] = attrs.field(eq=False, factory=dict, repr=False)

    def position_of(self, where: str) -> SourcePosition | None:
        return self.positions.get(where)


def parse_marketing_stacking(node: Node, block_ids: list[str]) -> MarketingStacking:
    entries = readers.check_keys(node, _KEYS)
    positions: dict[str, SourcePosition] = {key: node.key_position(key) for key in entries}

    def ids(list_node: Node, where: str, *, at_least: int = 0) -> tuple[str, ...]:
        items = readers.sequence(list_node)
        if len(items) < at_least:
            raise ManifestError.at(
                list_node,
                f"a best_of group names at least {at_least} blocks, the ones only the best of which applies "
                f"(got {len(items)})",
            )
        seen: dict[str, Node] = {}
        found: list[str] = []
        for index, item in enumerate(items):
            block_id = readers.string(item)
            if block_id not in block_ids:
                raise ManifestError.at(
                    item,
                    f"no block with id {block_id!r}{readers.suggestion(block_id, block_ids)} "
                    f"(blocks: {', '.join(block_ids)})",
                )
            readers.unique(item, block_id, seen, "block id")
            positions[f"{where}[{index}]"] = item.position
            found.append(block_id)
        return tuple(found)

    order = ids(entries["order"], "order") if "order" in entries else None
    exclusive = ids(entries["exclusive"], "exclusive") if "exclusive" in entries else ()
    groups: list[tuple[str, ...]] = []
    grouped: dict[str, int] = {}
    if "best_of" in entries:
        for index, group_node in enumerate(readers.sequence(entries["best_of"])):
            group = ids(group_node, f"best_of[{index}]", at_least=2)
            for member, item in zip(group, readers.sequence(group_node), strict=True):
                if member in exclusive:
                    raise ManifestError.at(
                        item,
                        f"block {member!r} is exclusive, so it already competes alone with everything else; "
                        "leave it out of best_of",
                    )
                if member in grouped:
                    # A block in two groups could be both kept and dropped: groups are disjoint.
                    raise ManifestError.at(
                        item,
                        f"block {member!r} is already in best_of[{grouped[member]}]; a block is in one group at most",
                    )
                grouped[member] = index
            groups.append(group)
    return MarketingStacking(order=order, exclusive=exclusive, best_of=tuple(groups), written=True, positions=positions)
