"""A Merkle tree over stored perfect-subtree hashes: appends and proofs in O(log n) reads.

The tree never rehashes the log. Every *perfect* subtree (``2**level`` leaves starting at
``index * 2**level``) is hashed once, when its last leaf arrives, and stored under
``(level, index)``; level 0 holds the leaf hashes. Any root, inclusion proof or
consistency proof, for the current size or any earlier one, is then a fold over
O(log n) stored nodes: a subtree on the right edge that is not perfect is recomputed from
the perfect subtrees that decompose it.

Storage is behind :class:`NodeStore`, deliberately as narrow as a table
``(election, level, idx, hash)``. This module must never do I/O itself, never rewrite a
stored node and never hold the whole tree in memory (``InMemoryNodeStore`` is for tests
and small tools). The naive functions in :mod:`hsm_signer.log.merkle` are the reference
this module is tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..errors import FormatError, VerificationError
from .merkle import EMPTY_ROOT, HASH_SIZE, node_hash, split_point

NodeKey = tuple[int, int]
"""(level, index) of a perfect subtree; it covers leaves [index << level, (index + 1) << level)."""


class MissingNodeError(VerificationError):
    """The node store lacks a node the tree needs: it was truncated or is corrupt."""


@runtime_checkable
class NodeStore(Protocol):
    """Where perfect-subtree hashes live (one store per log)."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        """The hashes for ``keys``, in the same order. Raise MissingNodeError if any is absent."""

    def put_nodes(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Store ``(level, index, hash)`` items. Nodes are written once and never changed."""


class InMemoryNodeStore:
    """A :class:`NodeStore` in a dict. For tests, tools and small logs."""

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        try:
            return [self._nodes[key] for key in keys]
        except KeyError as exc:
            level, index = exc.args[0]
            raise MissingNodeError(f"tree node (level {level}, index {index}) is not in the store") from None

    def put_nodes(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        for level, index, value in items:
            old = self._nodes.setdefault((level, index), bytes(value))
            if old != value:
                raise ValueError(f"tree node (level {level}, index {index}) is already stored with another hash")

    def __len__(self) -> int:
        return len(self._nodes)


# --- pure range arithmetic --------------------------------------------------------------

def perfect_subtrees(lo: int, hi: int) -> list[NodeKey]:
    """The perfect subtrees that exactly cover leaves [lo, hi), left to right.

    For an RFC 9162 subtree range (such as [0, n), or any range a proof mentions) the
    sizes strictly decrease, so the range hash is the right fold of the pieces.
    """
    keys = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo & ((1 << level) - 1):
            level -= 1
        keys.append((level, lo >> level))
        lo += 1 << level
    return keys


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make PATH(index, D[size]), in proof order."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make PROOF(m, D[n]), in proof order. Requires 0 < m < n."""
    ranges: list[tuple[int, int]] = []
    lo, hi, complete = 0, n, True
    while hi - lo != m - lo:
        k = split_point(hi - lo)
        if m - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, complete = lo + k, False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class MerkleTree:
    """An RFC 9162 tree of ``size`` leaves whose perfect subtrees are in ``store``.

    Not thread-safe: one writer (the sequencer) appends; readers may build their own
    ``MerkleTree`` over the same store with the size of a signed checkpoint.
    """

    def __init__(self, store: NodeStore, size: int = 0):
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"tree size must be a non-negative integer, got {size!r}")
        self._store = store
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"tree size must be a non-negative integer, got {size!r}")
        if size > self._size:
            raise FormatError(f"tree size {size} is beyond the current size {self._size}")
        return size

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of RFC subtree ranges, with one batched store read."""
        covers = [perfect_subtrees(lo, hi) for lo, hi in ranges]
        keys = list(dict.fromkeys(key for cover in covers for key in cover))
        found = dict(zip(keys, self._store.get_nodes(keys))) if keys else {}
        return [_fold_right([found[key] for key in cover]) for cover in covers]

    def append(self, leaf_hashes: Sequence[bytes]) -> tuple[int, bytes]:
        """Append leaf hashes; return the new size and root.

        Costs one read of the O(log n) right-edge nodes and one write of the
        O(batch) new nodes (each leaf plus every perfect subtree it completes).
        """
        for i, h in enumerate(leaf_hashes):
            if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
                raise FormatError(f"leaf hash [{i}] must be {HASH_SIZE} bytes")
        frontier = perfect_subtrees(0, self._size)
        stack = list(zip([lvl for lvl, _ in frontier], self._store.get_nodes(frontier))) if frontier else []
        new_nodes: list[tuple[int, int, bytes]] = []
        n = self._size
        for h in leaf_hashes:
            h = bytes(h)
            new_nodes.append((0, n, h))
            stack.append((0, h))
            n += 1
            while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
                level, right = stack.pop()
                _, left = stack.pop()
                level += 1
                parent = node_hash(left, right)
                new_nodes.append((level, (n >> level) - 1, parent))
                stack.append((level, parent))
        if new_nodes:
            self._store.put_nodes(new_nodes)
        self._size = n
        return n, (_fold_right([h for _, h in stack]) if stack else EMPTY_ROOT)

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._range_hashes([(0, size)])[0]

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf ``index``. Requires 0 <= index < size."""
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < self._size:
            raise FormatError(f"leaf index {index!r} is outside a tree of size {self._size}")
        return self._store.get_nodes([(0, index)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]). Requires 0 <= index < size <= self.size."""
        size = self._check_size(size)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            raise FormatError(f"leaf index {index!r} is outside a tree of size {size}")
        return self._range_hashes(_inclusion_ranges(index, size))

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]). Requires 0 <= m <= n <= self.size; empty when m == 0 or m == n."""
        n = self._check_size(n)
        if not isinstance(m, int) or isinstance(m, bool) or not 0 <= m <= n:
            raise FormatError(f"no consistency proof from size {m!r} to size {n}")
        if m == 0 or m == n:
            return []
        return self._range_hashes(_consistency_ranges(m, n))
