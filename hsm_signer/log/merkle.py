"""RFC 9162 Merkle tree hashing, proof sizes and proof verification.

Pure functions over hashes; no storage, no I/O. Trees are built (roots and proofs) only
by :mod:`hsm_signer.log.tree`. The verifiers follow RFC 9162 §2.1.3.2 and §2.1.4.2 step
by step.

Verifiers return ``None`` on success and never return ``False``: they raise
:class:`~hsm_signer.errors.FormatError` for malformed input (bad sizes, wrong proof
length, a hash that is not 32 bytes) and :class:`~hsm_signer.errors.RootMismatchError`
when a well-formed proof leads to a different root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..errors import FormatError, RootMismatchError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 §2.1.1)."""


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n``. Requires n >= 2."""
    return 1 << ((n - 1).bit_length() - 1)


# --- proof sizes ------------------------------------------------------------------------

def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in PATH(index, D[size]). Requires 0 <= index < size."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner + border


def consistency_proof_size(m: int, n: int) -> int:
    """Number of hashes in PROOF(m, D[n]). Requires 0 <= m <= n."""
    if m == 0 or m == n:
        return 0
    count, complete = 0, True
    while m != n:
        k = split_point(n)
        count += 1
        if m <= k:
            n = k
        else:
            m, n, complete = m - k, n - k, False
    return count + (0 if complete else 1)


# --- verifiers --------------------------------------------------------------------------

def _hashes(n: int) -> str:
    return f"{n} hash" if n == 1 else f"{n} hashes"


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise FormatError(f"{what} must be a {HASH_SIZE}-byte SHA-256 hash, got {got}", "proof.hash")


def _check_size(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(f"{what} must be a non-negative integer, got {value!r}", "proof.index")


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is at ``index`` in the tree of ``size`` leaves with ``root``.

    Requires 0 <= index < size and len(proof) == inclusion_proof_size(index, size);
    otherwise raises FormatError. Raises RootMismatchError if the proof leads elsewhere.
    RFC 9162 §2.1.3.2.
    """
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if index >= size:
        raise FormatError(f"leaf index {index} is outside a tree of size {size}", "proof.index")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    want = inclusion_proof_size(index, size)
    if len(proof) != want:
        raise FormatError(
            f"an inclusion proof for leaf {index} in a tree of size {size} has {_hashes(want)}, got {len(proof)}",
            "proof.size",
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash [{i}]")

    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:  # cannot happen once the length is checked; kept to mirror the RFC
            raise FormatError("inclusion proof is longer than the path to the root", "proof.size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise FormatError("inclusion proof is shorter than the path to the root", "proof.size")
    if r != root:
        raise RootMismatchError(
            f"inclusion proof for leaf {index} leads to root {r.hex()}, not the expected {bytes(root).hex()}"
        )


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the one of ``size1`` with ``root1``.

    Requires 0 <= size1 <= size2 and len(proof) == consistency_proof_size(size1, size2);
    otherwise raises FormatError. When size1 == 0 the proof is empty and root1 must be the
    empty-tree hash; when size1 == size2 the proof is empty and the roots must be equal.
    Raises RootMismatchError if a root does not match. RFC 9162 §2.1.4.2.
    """
    _check_size(size1, "first tree size")
    _check_size(size2, "second tree size")
    if size1 > size2:
        raise FormatError(f"tree size {size2} is smaller than earlier size {size1}: a log never shrinks", "log.shrank")
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    want = consistency_proof_size(size1, size2)
    if len(proof) != want:
        raise FormatError(
            f"a consistency proof from size {size1} to size {size2} has {_hashes(want)}, got {len(proof)}",
            "proof.size",
        )
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof hash [{i}]")

    if size1 == 0:
        if root1 != EMPTY_ROOT:
            raise RootMismatchError(f"the root of an empty tree is {EMPTY_ROOT.hex()}, not {bytes(root1).hex()}")
        return
    if size1 == size2:
        if root1 != root2:
            raise RootMismatchError(f"two trees of size {size1} have different roots {bytes(root1).hex()} and {bytes(root2).hex()}")
        return

    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: first is a power of two
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise FormatError("consistency proof is longer than the path to the root", "proof.size")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise FormatError("consistency proof is shorter than the path to the root", "proof.size")
    if fr != root1:
        raise RootMismatchError(
            f"consistency proof leads to first root {fr.hex()}, not the expected {bytes(root1).hex()}"
        )
    if sr != root2:
        raise RootMismatchError(
            f"consistency proof leads to second root {sr.hex()}, not the expected {bytes(root2).hex()}"
        )
