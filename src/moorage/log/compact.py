"""A compact range: the roots of the perfect subtrees covering leaves [0, size), enough
to append a leaf and compute the tree head in O(log n) without reading the leaves."""

from __future__ import annotations

from dataclasses import dataclass, field

from moorage.log.merkle import EMPTY_ROOT, node_hash


@dataclass
class CompactRange:
    size: int = 0
    # Roots of perfect subtrees, largest (leftmost) first; their sizes are the set bits of size.
    nodes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        value, size = leaf, self.size
        while size & 1:  # each trailing set bit is a subtree of equal height to merge with
            value = node_hash(self.nodes.pop(), value)
            size >>= 1
        self.nodes.append(value)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        value = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            value = node_hash(left, value)
        return value

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "nodes": [n.hex() for n in self.nodes]}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> CompactRange:
        nodes = doc.get("nodes", [])
        assert isinstance(nodes, list)
        size = doc.get("size", 0)
        assert isinstance(size, int)
        return cls(size, [bytes.fromhex(str(n)) for n in nodes])
