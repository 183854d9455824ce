"""The stored tree: same answers as the naive reference, from O(log n) node reads."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import pytest

from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.log import merkle
from hsm_signer.log.tree import (
    CompactRange,
    InMemoryNodeStore,
    LevelTree,
    MerkleTree,
    MissingNodeError,
    NodeStore,
    perfect_subtrees,
)

import merkle_reference as reference

TREE = json.loads((Path(__file__).parent / "vectors" / "rfc6962" / "tree.json").read_text())
POOL = [hashlib.sha256(b"tree-%d" % i).digest() for i in range(3000)]


class CountingStore:
    """Wraps a store and counts calls and keys, to show the cost of each operation."""

    def __init__(self, inner):
        self.inner = inner
        self.reset()

    def reset(self):
        self.read_calls = self.keys_read = self.write_calls = self.nodes_written = 0

    def get_nodes(self, keys):
        self.read_calls += 1
        self.keys_read += len(keys)
        return self.inner.get_nodes(keys)

    def put_nodes(self, items):
        items = list(items)
        self.write_calls += 1
        self.nodes_written += len(items)
        self.inner.put_nodes(items)


class SyntheticStore:
    """Pretends to hold a huge tree: any node 'exists' and hashes to a function of its key.

    The hashes are not a real tree, but the keys a proof asks for are exactly the ones a
    real tree of that size would be asked for, which is what the read-count tests measure.
    """

    def __init__(self):
        self.read_calls = self.keys_read = 0

    def get_nodes(self, keys):
        self.read_calls += 1
        self.keys_read += len(keys)
        return [hashlib.sha256(b"%d/%d" % key).digest() for key in keys]

    def put_nodes(self, items):
        for _ in items:
            pass


def build(hashes, batches=None, seed=0):
    """A tree over ``hashes``, appended in random batch sizes (or the given ones)."""
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    rng = random.Random(seed)
    i = 0
    while i < len(hashes):
        step = batches.pop(0) if batches else rng.randint(1, 40)
        tree.append(hashes[i:i + step])
        i += step
    return tree, store


def test_in_memory_store_is_a_node_store():
    assert isinstance(InMemoryNodeStore(), NodeStore)


def test_the_rfc6962_test_tree_stores_exactly_the_published_perfect_subtrees():
    leaf_hashes = [merkle.leaf_hash(bytes.fromhex(x)) for x in TREE["leaves"]]
    store = InMemoryNodeStore()
    tree = MerkleTree(store)
    for size, h in enumerate(leaf_hashes, 1):
        new_size, root = tree.append([h])
        assert (new_size, root.hex()) == (size, TREE["roots"][size])
    stored = store.get_nodes([(level, i) for level, row in enumerate(TREE["node_hashes"]) for i in range(len(row))])
    assert [h.hex() for h in stored] == [x for row in TREE["node_hashes"] for x in row]
    assert len(store) == 15
    for size in range(9):
        assert tree.root(size).hex() == TREE["roots"][size]


def test_every_proof_of_every_small_tree_matches_the_naive_reference():
    hashes = POOL[:40]
    tree, _ = build(hashes, seed=1)
    for n in range(0, 41):
        assert tree.root(n) == reference.root_from_leaf_hashes(hashes[:n])
        for i in range(n):
            assert tree.inclusion_proof(i, n) == reference.inclusion_proof(hashes, i, n), (i, n)
        for m in range(n + 1):
            assert tree.consistency_proof(m, n) == reference.consistency_proof(hashes, m, n), (m, n)


@pytest.mark.parametrize("seed", range(3))
def test_appending_in_any_batch_sizes_gives_the_naive_root_after_every_batch(seed):
    rng = random.Random(seed)
    tree = MerkleTree(InMemoryNodeStore())
    n = 0
    while n < 700:
        batch = POOL[n:n + rng.choice([1, 2, 3, 7, 64, 100])]
        size, root = tree.append(batch)
        n += len(batch)
        assert (size, root) == (n, reference.root_from_leaf_hashes(POOL[:n]))


def test_random_proofs_on_a_tree_of_3000_leaves_match_the_naive_reference_for_historical_sizes():
    tree, _ = build(list(POOL), seed=2)
    rng = random.Random(3)
    for _ in range(40):
        n = rng.randint(1, len(POOL))
        i = rng.randrange(n)
        m = rng.randint(0, n)
        assert tree.inclusion_proof(i, n) == reference.inclusion_proof(POOL, i, n)
        assert tree.consistency_proof(m, n) == reference.consistency_proof(POOL, m, n)
        merkle.verify_inclusion(POOL[i], i, n, tree.inclusion_proof(i, n), tree.root(n))


def test_append_costs_one_read_of_the_right_edge_and_one_write_of_the_new_nodes():
    store = CountingStore(InMemoryNodeStore())
    tree = MerkleTree(store)
    tree.append(POOL[:1000])
    store.reset()
    tree.append(POOL[1000:1100])
    assert store.read_calls == 1
    assert store.keys_read == bin(1000).count("1")  # the perfect subtrees of the old size
    assert store.write_calls == 1
    assert 100 <= store.nodes_written <= 2 * 100 + math.ceil(math.log2(1100))


@pytest.mark.parametrize("size", [1_000, 1_000_000, 10_000_000, 2**40 + 12345])
def test_a_proof_reads_o_log_n_nodes_in_one_batched_call_whatever_the_tree_size(size):
    store = SyntheticStore()
    tree = MerkleTree(store, size)
    bound = 2 * math.ceil(math.log2(size)) + 2
    rng = random.Random(size)
    for _ in range(50):
        store.read_calls = store.keys_read = 0
        tree.inclusion_proof(rng.randrange(size), size)
        assert store.read_calls == 1 and store.keys_read <= bound
        store.read_calls = store.keys_read = 0
        m = rng.randint(1, size - 1)
        tree.consistency_proof(m, size)
        assert store.read_calls == 1 and store.keys_read <= bound
        store.read_calls = store.keys_read = 0
        tree.root(rng.randint(1, size))
        assert store.read_calls == 1 and store.keys_read <= math.ceil(math.log2(size)) + 1
    store.read_calls = store.keys_read = 0
    tree.append([POOL[0]] * 10)
    assert store.read_calls == 1 and store.keys_read <= math.ceil(math.log2(size)) + 1


def test_perfect_subtrees_cover_a_range_with_aligned_power_of_two_pieces():
    assert perfect_subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert perfect_subtrees(8, 13) == [(2, 2), (0, 12)]
    assert perfect_subtrees(0, 0) == []


def test_asking_beyond_the_current_size_is_refused():
    tree, _ = build(POOL[:10], batches=[10])
    with pytest.raises(FormatError, match="tree size 11 is beyond the current size 10"):
        tree.inclusion_proof(0, 11)
    with pytest.raises(FormatError, match="leaf index 10 is outside a tree of size 10"):
        tree.inclusion_proof(10)
    with pytest.raises(FormatError, match="no consistency proof from size 7 to size 5"):
        tree.consistency_proof(7, 5)
    with pytest.raises(FormatError, match=r"leaf hash \[1\] must be 32 bytes"):
        tree.append([POOL[0], b"short"])
    assert tree.size == 10


def test_a_store_truncated_behind_the_trees_back_is_reported_not_papered_over():
    tree = MerkleTree(InMemoryNodeStore(), size=5)
    with pytest.raises(MissingNodeError, match=r"tree node \(level 2, index 0\) is not in the store"):
        tree.root()
    assert issubclass(MissingNodeError, VerificationError)


def test_the_in_memory_store_never_rewrites_a_node():
    store = InMemoryNodeStore()
    store.put_nodes([(0, 0, POOL[0])])
    store.put_nodes([(0, 0, POOL[0])])  # same value again is harmless
    with pytest.raises(ValueError, match=r"tree node \(level 0, index 0\) is already stored with another hash"):
        store.put_nodes([(0, 0, POOL[1])])


def test_empty_tree():
    tree = MerkleTree(InMemoryNodeStore())
    assert tree.root() == merkle.EMPTY_ROOT
    assert tree.append([]) == (0, merkle.EMPTY_ROOT)
    assert tree.consistency_proof(0) == []


# --- the same builder streams the tally's root and the audit's in-memory tree -------------------

def test_the_compact_range_root_agrees_with_the_reference_for_every_small_size():
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(70)]
    for n in range(len(hashes) + 1):
        edge = CompactRange()
        for h in hashes[:n]:
            edge.extend(h)
        assert (edge.size, edge.root()) == (n, reference.root_from_leaf_hashes(hashes[:n])), n


@pytest.mark.parametrize("seed", range(3))
def test_the_compact_range_in_random_batches_reports_every_new_node_once(seed):
    rng, edge, n = random.Random(seed), CompactRange(), 0
    made = {}
    while n < 600:
        batch = POOL[n:n + rng.choice([1, 2, 3, 5, 31, 64, 129])]
        for level, start, data in edge.extend(b"".join(batch)):
            for i in range(len(data) // 32):
                assert (level, start + i) not in made
                made[(level, start + i)] = data[32 * i:32 * i + 32]
        n += len(batch)
        assert edge.root() == reference.root_from_leaf_hashes(POOL[:n]), n
    store = InMemoryNodeStore()
    MerkleTree(store).append(POOL[:n])
    assert made == {key: store.get_nodes([key])[0] for key in made} and len(made) == len(store)


def test_a_compact_range_refuses_an_edge_of_the_wrong_length_and_partial_hashes():
    with pytest.raises(FormatError, match="a tree of size 5 has 2 right-edge node"):
        CompactRange(5, POOL[:1])
    with pytest.raises(FormatError, match="whole number of 32-byte hashes"):
        CompactRange().extend(b"x" * 33)


def test_the_level_tree_gives_the_reference_roots_and_proofs():
    hashes = [merkle.leaf_hash(bytes([i])) for i in range(37)]
    for n in (0, 1, 2, 5, 16, 37):
        tree = LevelTree(b"".join(hashes[:n])).tree()
        assert tree.root() == reference.root_from_leaf_hashes(hashes[:n])
        for m in range(n + 1):
            assert tree.consistency_proof(m, n) == reference.consistency_proof(hashes, m, n)
        for i in range(n):
            assert tree.inclusion_proof(i, n) == reference.inclusion_proof(hashes, i, n)


def test_a_level_tree_fed_in_batches_equals_one_fed_at_once_and_is_read_only():
    whole = LevelTree(b"".join(POOL[:1000]))
    fed = LevelTree()
    for start in range(0, 1000, 77):
        fed.extend(b"".join(POOL[start:min(start + 77, 1000)]))
    keys = [(level, i) for level in range(10) for i in range(1000 >> level)]
    assert fed.size == whole.size == 1000 and fed.get_nodes(keys) == whole.get_nodes(keys)
    with pytest.raises(MissingNodeError, match=r"level 3, index 125\) is beyond a log of 1000"):
        fed.get_nodes([(3, 125)])
    with pytest.raises(TypeError, match="read-only"):
        fed.put_nodes([(0, 1000, POOL[1000])])
