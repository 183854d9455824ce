"""RFC 9162 hashing and proofs: published RFC 6962 vectors, negative vectors, and properties."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm_signer.errors import FormatError, RootMismatchError, VerificationError
from hsm_signer.log.merkle import (
    EMPTY_ROOT,
    consistency_proof_size,
    inclusion_proof_size,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

from merkle_reference import consistency_proof, inclusion_proof, root_from_leaf_hashes

VECTORS = Path(__file__).parent / "vectors"
TREE = json.loads((VECTORS / "rfc6962" / "tree.json").read_text())
LEAVES = [bytes.fromhex(x) for x in TREE["leaves"]]
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]
INCLUSION_FILES = sorted((VECTORS / "rfc6962" / "inclusion").glob("*/*.json"))
CONSISTENCY_FILES = sorted((VECTORS / "rfc6962" / "consistency").glob("*/*.json"))
UPSTREAM_FILES = sorted((VECTORS / "upstream" / "transparency-dev-merkle").glob("*/*/*.json"))
H = bytes.fromhex

# A pool of leaf hashes for property tests; random trees are prefixes of random slices.
POOL = [hashlib.sha256(b"pool-%d" % i).digest() for i in range(4096)]


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


# --- the published tree -------------------------------------------------------------------

def test_leaf_hashes_of_the_rfc6962_test_tree_match_the_published_level_0():
    assert [h.hex() for h in LEAF_HASHES] == TREE["node_hashes"][0]


def test_every_published_interior_node_is_the_hash_of_its_children():
    levels = TREE["node_hashes"]
    for level in range(1, len(levels)):
        for index, expected in enumerate(levels[level]):
            left, right = levels[level - 1][2 * index], levels[level - 1][2 * index + 1]
            assert node_hash(H(left), H(right)).hex() == expected


@pytest.mark.parametrize("size", range(0, 9))
def test_root_of_every_prefix_of_the_test_tree_matches_the_published_root(size):
    assert root_from_leaf_hashes(LEAF_HASHES[:size]).hex() == TREE["roots"][size]


def test_empty_tree_root_is_sha256_of_nothing():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- vector files ---------------------------------------------------------------------------

def _check_inclusion(v: dict) -> None:
    verify_inclusion(H(v["leaf_hash"]), v["leaf_index"], v["tree_size"], [H(p) for p in v["proof"]], H(v["root"]))


def _check_consistency(v: dict) -> None:
    verify_consistency(v["size1"], v["size2"], [H(p) for p in v["proof"]], H(v["root1"]), H(v["root2"]))


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_name)
def test_inclusion_vector(path):
    vector = json.loads(path.read_text())
    if vector["valid"]:
        _check_inclusion(vector)
    else:
        with pytest.raises(VerificationError):
            _check_inclusion(vector)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_name)
def test_consistency_vector(path):
    vector = json.loads(path.read_text())
    if vector["valid"]:
        _check_consistency(vector)
    else:
        with pytest.raises(VerificationError):
            _check_consistency(vector)


@pytest.mark.parametrize("path", [p for p in INCLUSION_FILES if p.stem == "happy-path"], ids=_name)
def test_naive_generator_reproduces_published_inclusion_proof(path):
    v = json.loads(path.read_text())
    assert [p.hex() for p in inclusion_proof(LEAF_HASHES, v["leaf_index"], v["tree_size"])] == v["proof"]


@pytest.mark.parametrize("path", [p for p in CONSISTENCY_FILES if p.stem == "happy-path"], ids=_name)
def test_naive_generator_reproduces_published_consistency_proof(path):
    v = json.loads(path.read_text())
    assert [p.hex() for p in consistency_proof(LEAF_HASHES, v["size1"], v["size2"])] == v["proof"]


@pytest.mark.parametrize("path", UPSTREAM_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}")
def test_upstream_transparency_dev_vector(path):
    v = json.loads(path.read_text())
    b64 = base64.b64decode
    proof = [b64(p) for p in v["proof"]]
    if "leafIdx" in v:
        check = lambda: verify_inclusion(b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, b64(v["root"]))  # noqa: E731
    else:
        check = lambda: verify_consistency(v["size1"], v["size2"], proof, b64(v["root1"]), b64(v["root2"]))  # noqa: E731
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            check()
    else:
        check()


def test_a_flipped_proof_bit_is_a_root_mismatch_and_a_short_proof_is_a_format_error():
    v = json.loads((VECTORS / "rfc6962/inclusion/5-8/modified-proof[1]-bit.json").read_text())
    with pytest.raises(RootMismatchError, match="inclusion proof for leaf 5 leads to root"):
        _check_inclusion(v)
    v = json.loads((VECTORS / "rfc6962/inclusion/5-8/truncated.json").read_text())
    with pytest.raises(FormatError, match="leaf 5 in a tree of size 8 has 3 hashes, got 2"):
        _check_inclusion(v)


# --- malformed input ------------------------------------------------------------------------

ROOT8 = H(TREE["roots"][8])


@pytest.mark.parametrize(
    "index, size, message",
    [
        (8, 8, "leaf index 8 is outside a tree of size 8"),
        (0, 0, "leaf index 0 is outside a tree of size 0"),
        (-1, 8, "leaf index must be a non-negative integer"),
        (True, 8, "leaf index must be a non-negative integer"),
        (0, "8", "tree size must be a non-negative integer"),
    ],
)
def test_verify_inclusion_rejects_bad_index_or_size(index, size, message):
    with pytest.raises(FormatError, match=message):
        verify_inclusion(LEAF_HASHES[0], index, size, [], ROOT8)


def test_verify_inclusion_rejects_hashes_that_are_not_32_bytes():
    proof = inclusion_proof(LEAF_HASHES, 0, 8)
    with pytest.raises(FormatError, match="leaf hash must be a 32-byte SHA-256 hash, got 9 bytes"):
        verify_inclusion(b"WrongLeaf", 0, 8, proof, ROOT8)
    with pytest.raises(FormatError, match="root hash must be a 32-byte"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, proof, ROOT8[:31])
    with pytest.raises(FormatError, match=r"inclusion proof hash \[2\] must be a 32-byte SHA-256 hash, got 0 bytes"):
        verify_inclusion(LEAF_HASHES[0], 0, 8, proof[:2] + [b""], ROOT8)


def test_verify_consistency_rejects_a_shrinking_log_and_wrong_lengths():
    with pytest.raises(FormatError, match="tree size 3 is smaller than earlier size 5: a log never shrinks"):
        verify_consistency(5, 3, [], ROOT8, ROOT8)
    with pytest.raises(FormatError, match="from size 2 to size 5 has 2 hashes, got 0"):
        verify_consistency(2, 5, [], H(TREE["roots"][2]), H(TREE["roots"][5]))
    with pytest.raises(FormatError, match="from size 0 to size 8 has 0 hashes, got 1"):
        verify_consistency(0, 8, [EMPTY_ROOT], EMPTY_ROOT, ROOT8)


def test_trivial_consistency_cases():
    verify_consistency(0, 8, [], EMPTY_ROOT, ROOT8)
    verify_consistency(8, 8, [], ROOT8, ROOT8)
    with pytest.raises(RootMismatchError, match="root of an empty tree is e3b0c442"):
        verify_consistency(0, 8, [], ROOT8, ROOT8)
    with pytest.raises(RootMismatchError, match="two trees of size 8 have different roots"):
        verify_consistency(8, 8, [], ROOT8, EMPTY_ROOT)


def test_naive_generators_refuse_out_of_range_requests():
    with pytest.raises(FormatError, match="no inclusion proof for index 8 in a tree of size 8"):
        inclusion_proof(LEAF_HASHES, 8, 8)
    with pytest.raises(FormatError, match="no consistency proof from size 5 to size 3"):
        consistency_proof(LEAF_HASHES, 5, 3)


# --- properties against the naive reference --------------------------------------------------

def test_every_proof_of_every_small_tree_verifies_and_has_the_predicted_size():
    for n in range(1, 65):
        hashes = POOL[:n]
        roots = [root_from_leaf_hashes(hashes[:m]) for m in range(n + 1)]
        for i in range(n):
            proof = inclusion_proof(hashes, i, n)
            assert len(proof) == inclusion_proof_size(i, n)
            verify_inclusion(hashes[i], i, n, proof, roots[n])
        for m in range(n + 1):
            proof = consistency_proof(hashes, m, n)
            assert len(proof) == consistency_proof_size(m, n)
            verify_consistency(m, n, proof, roots[m], roots[n])


tree_and_index = st.integers(1, 3000).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(0, len(POOL) - n))
)


@settings(max_examples=40, deadline=None)
@given(tree_and_index, st.data())
def test_random_inclusion_proofs_verify_and_any_corruption_fails(case, data):
    n, index, offset = case
    hashes = POOL[offset:offset + n]
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, index, n)
    verify_inclusion(hashes[index], index, n, proof, root)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[k] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(bad[k]))
        with pytest.raises(RootMismatchError):
            verify_inclusion(hashes[index], index, n, bad, root)
    other = data.draw(st.integers(0, n - 1))
    if other != index:
        with pytest.raises(VerificationError):
            verify_inclusion(hashes[index], other, n, proof, root)
    with pytest.raises(VerificationError):
        verify_inclusion(hashes[index], index, n, proof + [root], root)


sizes_m_n = st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n)))


@settings(max_examples=40, deadline=None)
@given(sizes_m_n, st.data())
def test_random_consistency_proofs_verify_and_any_corruption_fails(case, data):
    m, n = case
    hashes = POOL[:n]
    root1, root2 = root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m, n)
    verify_consistency(m, n, proof, root1, root2)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 0x10]) + bad[k][1:]
        with pytest.raises(RootMismatchError):
            verify_consistency(m, n, bad, root1, root2)
        with pytest.raises(VerificationError):
            verify_consistency(m, n, proof, root2 if m != n else EMPTY_ROOT, root2)
        with pytest.raises(FormatError):
            verify_consistency(m, n, proof[:-1], root1, root2)
