"""The one RFC 9162 tree builder: appends, roots and proofs over stored perfect subtrees.

Every tree in the product is built here: the sequencer's stored log (:class:`MerkleTree`
over the database), the audit's in-memory tree of a published record (:class:`LevelTree`)
and the tally's streaming root (:class:`CompactRange` alone). They share one hashing
loop, :meth:`CompactRange.extend`, which hashes a batch level by level.

The tree never rehashes the log. Every *perfect* subtree (``2**level`` leaves starting at
``index * 2**level``) is hashed once, when its last leaf arrives, and stored under
``(level, index)``; level 0 holds the leaf hashes. Any root, inclusion proof or
consistency proof, for the current size or any earlier one, is then a fold over
O(log n) stored nodes: a subtree on the right edge that is not perfect is recomputed from
the perfect subtrees that decompose it.

Storage is behind :class:`NodeStore`, deliberately as narrow as a table
``(election, level, idx, hash)``. This module must never do I/O itself, never rewrite a
stored node and never hold the whole tree in memory (``InMemoryNodeStore`` is for tests
and small tools, ``LevelTree`` for the offline audit). The tests check it against the
RFC 6962 vectors and a naive recursive reference (``tests/merkle_reference.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from ..errors import FormatError, VerificationError
from .merkle import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, node_hash, split_point

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


class CompactRange:
    """The right edge of a tree of ``size`` leaves: at most one perfect subtree per level.

    Enough to append more leaves and to compute the root, in O(log n) memory. ``nodes``
    are the hashes of :func:`perfect_subtrees` ``(0, size)``, left to right.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()):
        levels = [level for level, _ in perfect_subtrees(0, size)]
        if len(nodes) != len(levels):
            raise FormatError(f"a tree of size {size} has {len(levels)} right-edge node(s), got {len(nodes)}")
        self.size = size
        self._edge: dict[int, bytes] = dict(zip(levels, (bytes(n) for n in nodes)))

    def extend(self, leaf_hashes: bytes | bytearray) -> list[tuple[int, int, bytes]]:
        """Append concatenated 32-byte leaf hashes; return the new perfect subtrees.

        Each item is ``(level, first index, concatenated hashes)``: every leaf and every
        subtree the batch completes, level by level. Hashing a level is one comprehension
        over its pairs, which is what makes a million leaves take seconds, not minutes.
        """
        if len(leaf_hashes) % HASH_SIZE:
            raise FormatError(f"leaf hashes must be a whole number of {HASH_SIZE}-byte hashes")
        sha256, pair = hashlib.sha256, 2 * HASH_SIZE
        made: list[tuple[int, int, bytes]] = []
        data, start, level = bytes(leaf_hashes), self.size, 0
        while data:
            made.append((level, start, data))
            if start & 1:  # the first new node's left sibling is on the right edge
                data = self._edge[level] + data
            count = len(data) // HASH_SIZE
            if count & 1:
                self._edge[level] = data[-HASH_SIZE:]
            else:
                self._edge.pop(level, None)
            data = b"".join([sha256(NODE_PREFIX + data[i:i + pair]).digest()
                             for i in range(0, (count - 1) * HASH_SIZE, pair)])
            start, level = start >> 1, level + 1
        self.size += len(leaf_hashes) // HASH_SIZE
        return made

    def root(self) -> bytes:
        """MTH of the leaves so far: the right fold of the edge, smallest subtree first."""
        if not self._edge:
            return EMPTY_ROOT
        levels = sorted(self._edge)
        acc = self._edge[levels[0]]
        for level in levels[1:]:
            acc = node_hash(self._edge[level], acc)
        return acc


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


def _nodes(made: Iterable[tuple[int, int, bytes]]) -> Iterator[tuple[int, int, bytes]]:
    """``(level, index, hash)`` items from :meth:`CompactRange.extend`'s level blocks."""
    for level, start, data in made:
        for offset in range(0, len(data), HASH_SIZE):
            yield level, start + offset // HASH_SIZE, data[offset:offset + HASH_SIZE]


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
        edge = CompactRange(self._size, self._store.get_nodes(frontier) if frontier else [])
        made = edge.extend(b"".join(leaf_hashes))
        if made:
            self._store.put_nodes(_nodes(made))
        self._size = edge.size
        return edge.size, edge.root()

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


class LevelTree:
    """A :class:`NodeStore` in memory holding every perfect subtree, one byte string per level.

    32 bytes per node (a million leaves: about 64 MB). Fed by :meth:`extend` in batches as
    a file is read; nodes come only from :class:`CompactRange`. Read-only for
    :class:`MerkleTree` (``put_nodes`` refuses): build it with :meth:`extend`, then ask
    :meth:`tree` for roots and proofs at any size.
    """

    def __init__(self, leaf_hashes: bytes | bytearray = b""):
        self._edge = CompactRange()
        self._levels: list[bytearray] = []
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return self._edge.size

    def extend(self, leaf_hashes: bytes | bytearray) -> None:
        """Append concatenated 32-byte leaf hashes."""
        for level, _, data in self._edge.extend(leaf_hashes):
            if level == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level] += data

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        out = []
        for level, index in keys:
            start = index * HASH_SIZE
            if level >= len(self._levels) or index < 0 or start + HASH_SIZE > len(self._levels[level]):
                raise MissingNodeError(f"tree node (level {level}, index {index}) is beyond a log of {self.size} leaves")
            out.append(bytes(self._levels[level][start:start + HASH_SIZE]))
        return out

    def put_nodes(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        raise TypeError("a LevelTree is read-only; add leaves with extend()")

    def tree(self) -> MerkleTree:
        return MerkleTree(self, self.size)
