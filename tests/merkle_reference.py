"""The naive RFC 9162 tree: the reference the product's tree is tested against.

Straight from the recursive definitions (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1): every call
rehashes the leaves it is given, so it costs O(n) and is never used by the product. The
product builds trees only in :mod:`hsm_signer.log.tree`; tests compare the two on the
RFC 6962 vectors and on random trees, and generate the shared browser vectors with this.
"""

from __future__ import annotations

from collections.abc import Sequence

from hsm_signer.errors import FormatError
from hsm_signer.log.merkle import EMPTY_ROOT, node_hash, split_point


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) from the leaf hashes, by the recursive definition. O(n) hashes."""

    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 1:
            return leaf_hashes[lo]
        k = split_point(n)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    if not leaf_hashes:
        return EMPTY_ROOT
    return mth(0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) computed naively. Requires 0 <= index < size <= len(leaf_hashes)."""
    if not 0 <= index < size <= len(leaf_hashes):
        raise FormatError(f"no inclusion proof for index {index} in a tree of size {size}")

    def path(m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = split_point(n)
        if m < k:
            return path(m, lo, lo + k) + [root_from_leaf_hashes(leaf_hashes[lo + k:hi])]
        return path(m - k, lo + k, hi) + [root_from_leaf_hashes(leaf_hashes[lo:lo + k])]

    return path(index, 0, size)


def consistency_proof(leaf_hashes: Sequence[bytes], m: int, n: int) -> list[bytes]:
    """PROOF(m, D[n]) computed naively. Requires 0 <= m <= n <= len(leaf_hashes).

    The proof is empty when m == 0 or m == n.
    """
    if not 0 <= m <= n <= len(leaf_hashes):
        raise FormatError(f"no consistency proof from size {m} to size {n}")

    def subproof(m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [root_from_leaf_hashes(leaf_hashes[lo:hi])]
        k = split_point(n)
        if m <= k:
            return subproof(m, lo, lo + k, complete) + [root_from_leaf_hashes(leaf_hashes[lo + k:hi])]
        return subproof(m - k, lo + k, hi, False) + [root_from_leaf_hashes(leaf_hashes[lo:lo + k])]

    if m == 0 or m == n:
        return []
    return subproof(m, 0, n, True)
