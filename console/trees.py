"""Forests given as flat lists (each node with a ``parent_id``), laid out depth first for a table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TreeRow:
    node: Any
    level: int


def flatten(nodes: Iterable[Any]) -> list[TreeRow]:
    """Depth-first rows of a forest given as one flat list with ``parent_id``. Nodes whose parent is not
    in the list (not visible to this user, or filtered out) start a tree of their own."""
    nodes = list(nodes)
    present = {n.pk for n in nodes}
    children: dict[int | None, list[Any]] = defaultdict(list)
    for node in nodes:
        children[node.parent_id if node.parent_id in present else None].append(node)
    rows: list[TreeRow] = []

    def walk(parent: int | None, level: int) -> None:
        for node in children.get(parent, []):
            rows.append(TreeRow(node, level))
            walk(node.pk, level + 1)

    walk(None, 0)
    return rows
