"""A voter's story: cast, receive a receipt, verify it offline, tamper with it, get caught.

Also the auditor's recipe: check the checkpoint signature with nothing but ``openssl``.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_signer.bundle import CHECKPOINT, KeyBundle, KeyEntry
from hsm_signer.errors import FormatError, RootMismatchError, VerificationError
from hsm_signer.log.checkpoint import Checkpoint, legacy_origin, origin_for, sign_checkpoint
from hsm_signer.log.leaf import Leaf
from hsm_signer.log.merkle import leaf_hash
from hsm_signer.log.receipt import Receipt
from hsm_signer.log.tree import InMemoryNodeStore, MerkleTree
from hsm_signer.signer import ECDSA_P256, ED25519, SoftwareSigner
from hsm_signer.verify import VerifiedReceipt, summary_line, verify_receipt

ELECTION = "leader-2022"
ORIGIN = origin_for("vote.example.org", ELECTION)
CHECKPOINT_NAME = "hsm-signer.example/checkpoint"
TALLY_NAME = "hsm-signer.example/tally"


class Election:
    """Just enough of a log to issue receipts: a tree, a checkpoint key and a tally key."""

    def __init__(self, checkpoint_algorithm=ECDSA_P256, tally_algorithm=ED25519, origin=ORIGIN):
        self.origin = origin
        self.checkpoint_key = SoftwareSigner.generate(checkpoint_algorithm)
        self.tally_key = SoftwareSigner.generate(tally_algorithm)
        self.bundle = KeyBundle(
            ceremony_id="rehearsal",
            created="2025-01-31T09:00:00Z",
            keys=(
                KeyEntry.for_signing_key("checkpoint", "ckpt", "01", self.checkpoint_key.public_key_der, CHECKPOINT_NAME),
                KeyEntry.for_signing_key("tally", "tally", "02", self.tally_key.public_key_der, TALLY_NAME),
                KeyEntry.for_mac_key("codes", "03"),
            ),
        )
        self.tree = MerkleTree(InMemoryNodeStore())
        self.leaves: list[bytes] = []

    def cast(self, n: int, type: str = "ballot") -> list[int]:
        new = [Leaf.new(ELECTION, type, {"leader": ["truss" if i % 2 else "sunak"]}).to_bytes() for i in range(n)]
        first = len(self.leaves)
        self.leaves += new
        self.tree.append([leaf_hash(x) for x in new])
        return list(range(first, len(self.leaves)))

    def checkpoint(self, extensions=(), key=None, name=CHECKPOINT_NAME) -> str:
        cp = Checkpoint(self.origin, self.tree.size, self.tree.root(), tuple(extensions))
        return sign_checkpoint(cp, name, key or self.checkpoint_key)

    def receipt(self, index: int, note: str) -> Receipt:
        size = int(note.split("\n")[1])
        return Receipt(ELECTION, index, self.leaves[index], tuple(self.tree.inclusion_proof(index, size)), note)


@pytest.fixture(scope="module")
def election():
    e = Election()
    e.cast(5)
    return e


@pytest.fixture(scope="module")
def receipt(election):
    return election.receipt(3, election.checkpoint())


# --- the happy story -----------------------------------------------------------------------

def test_a_voter_verifies_their_receipt_offline_with_the_key_bundle(election, receipt):
    downloaded = Receipt.from_json(receipt.to_json())
    result = verify_receipt(downloaded, KeyBundle.from_json(election.bundle.to_json()))
    assert result == VerifiedReceipt(
        election=ELECTION, leaf_index=3, tree_size=5, key_name=CHECKPOINT_NAME,
        root_hash=election.tree.root(5), ballot_id=Leaf.from_bytes(receipt.leaf).ballot_id, origin=ORIGIN,
    )
    assert summary_line(result) == (
        f"OK: election {ELECTION}: ballot {result.ballot_id} is leaf 3 of log {ORIGIN} of 5 entries, "
        f"checkpoint signed by {CHECKPOINT_NAME}"
    )
    assert verify_receipt(downloaded, election.bundle, origin=ORIGIN) == result


def test_a_receipt_of_an_earlier_election_with_the_old_origin_still_verifies():
    e = Election(origin=legacy_origin(ELECTION))
    e.cast(3)
    receipt = e.receipt(1, e.checkpoint())
    assert verify_receipt(receipt, e.bundle).origin == f"hsm-signer/{ELECTION}"
    e.cast(2)
    later = e.checkpoint()
    assert verify_receipt(receipt, e.bundle, later, e.tree.consistency_proof(3, 5), origin=f"hsm-signer/{ELECTION}")


def test_a_receipt_from_a_log_other_than_the_published_one_is_rejected(receipt, election):
    """Two deployments may both run leader-2022: the published origin tells their logs apart."""
    with pytest.raises(VerificationError, match=f"receipt checkpoint is for log '{ORIGIN}', but election "
                                                f"'{ELECTION}' is log 'other.example.org/{ELECTION}'") as caught:
        verify_receipt(receipt, election.bundle, origin=f"other.example.org/{ELECTION}")
    assert (caught.value.step, caught.value.code) == ("checkpoint", "checkpoint.origin")


def test_a_later_checkpoint_of_another_deployments_log_of_the_same_election_is_rejected(receipt, election):
    other = sign_checkpoint(Checkpoint(f"other.example.org/{ELECTION}", 5, election.tree.root(5)), CHECKPOINT_NAME,
                            election.checkpoint_key)
    with pytest.raises(VerificationError, match=f"later checkpoint is for log 'other.example.org/{ELECTION}', "
                                                f"not '{ORIGIN}'") as caught:
        verify_receipt(receipt, election.bundle, other)
    assert (caught.value.step, caught.value.code) == ("later-checkpoint", "checkpoint.origin")


def test_the_receipt_is_still_in_the_final_tally_signed_by_the_tally_key():
    e = Election()
    e.cast(5)
    receipt = e.receipt(4, e.checkpoint())
    e.cast(7, type="postal")
    final = e.checkpoint(["tally leader sunak 6", "tally leader truss 6"], key=e.tally_key, name=TALLY_NAME)
    result = verify_receipt(receipt, e.bundle, final, e.tree.consistency_proof(5, 12))
    assert (result.later_tree_size, result.later_key_name) == (12, TALLY_NAME)
    assert summary_line(result).endswith(f"; the log of 12 entries signed by {TALLY_NAME} contains it")


def test_a_later_checkpoint_by_the_checkpoint_key_also_works_and_same_size_needs_no_proof(election, receipt):
    assert verify_receipt(receipt, election.bundle, receipt.checkpoint).later_tree_size == 5


@pytest.mark.parametrize("algorithms", [(ED25519, ECDSA_P256), (ECDSA_P256, ECDSA_P256)])
def test_either_algorithm_can_sign_checkpoints(algorithms):
    e = Election(*algorithms)
    e.cast(1)
    verify_receipt(e.receipt(0, e.checkpoint()), e.bundle)


# --- tampering, systematically -------------------------------------------------------------

def _flip_bit(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]


def _signature_line_parts(note: str) -> tuple[str, str, bytes]:
    text, block = note.split("\n\n")
    _, name, b64 = block.rstrip("\n").split(" ")
    return text + "\n", name, base64.b64decode(b64)


def _with_signature(note: str, name: str, raw: bytes) -> str:
    text, _, _ = _signature_line_parts(note)
    return f"{text}\n\u2014 {name} {base64.b64encode(raw).decode()}\n"


def receipt_mutations(r: Receipt):
    """Every single-field change of a receipt a forger or a corrupted copy could produce."""
    for i in range(len(r.leaf)):
        yield f"leaf byte {i}", replace(r, leaf=_flip_bit(r.leaf, i))
    yield "leaf of another ballot", replace(r, leaf=Leaf.new(ELECTION, "ballot", {"leader": ["sunak"]}).to_bytes())
    for index in sorted({0, r.leaf_index - 1, r.leaf_index + 1, r.leaf_index + 8, 2**40} - {r.leaf_index}):
        yield f"leaf_index {index}", replace(r, leaf_index=index)
    for k in range(len(r.inclusion_proof)):
        for bit in (0, 100, 255):
            proof = list(r.inclusion_proof)
            proof[k] = _flip_bit(proof[k], bit // 8)
            yield f"proof hash {k} bit {bit}", replace(r, inclusion_proof=tuple(proof))
    yield "proof hash dropped", replace(r, inclusion_proof=r.inclusion_proof[:-1])
    yield "proof hash added", replace(r, inclusion_proof=r.inclusion_proof + (r.inclusion_proof[0],))
    yield "proof hashes swapped", replace(r, inclusion_proof=r.inclusion_proof[::-1])
    yield "election", replace(r, election="other-election")
    text, name, raw = _signature_line_parts(r.checkpoint)
    lines = text.split("\n")[:-1]
    cp = Checkpoint.from_text(text)
    changed_lines = {
        "origin": [origin_for("vote.example.org", "other-election"), *lines[1:]],
        "size +1": [lines[0], str(cp.size + 1), *lines[2:]],
        "size -1": [lines[0], str(cp.size - 1), *lines[2:]],
        "root": [lines[0], lines[1], base64.b64encode(_flip_bit(cp.root_hash, 0)).decode()],
        "extension added": [*lines, "tally leader sunak 1"],
    }
    for what, new_lines in changed_lines.items():
        note = "".join(x + "\n" for x in new_lines) + f"\n\u2014 {name} {base64.b64encode(raw).decode()}\n"
        yield f"checkpoint line: {what}", replace(r, checkpoint=note)
    for i in range(len(raw)):
        yield f"signature byte {i}", replace(r, checkpoint=_with_signature(r.checkpoint, name, _flip_bit(raw, i)))
    yield "signature truncated", replace(r, checkpoint=_with_signature(r.checkpoint, name, raw[:-1]))
    yield "key name", replace(r, checkpoint=_with_signature(r.checkpoint, name + "x", raw))
    yield "key name of the tally key", replace(r, checkpoint=_with_signature(r.checkpoint, TALLY_NAME, raw))
    yield "signature line dropped", replace(r, checkpoint=text)
    yield "blank line dropped", replace(r, checkpoint=r.checkpoint.replace("\n\n", "\n"))


@pytest.mark.parametrize("algorithm", [ECDSA_P256, ED25519])
def test_every_single_field_change_of_a_receipt_is_rejected(algorithm):
    e = Election(checkpoint_algorithm=algorithm)
    e.cast(11)
    receipt = e.receipt(6, e.checkpoint())
    verify_receipt(receipt, e.bundle)
    mutations = list(receipt_mutations(receipt))
    assert len(mutations) > 200
    accepted = []
    for what, forged in mutations:
        assert forged != receipt, what
        try:
            verify_receipt(forged, e.bundle)
        except VerificationError:
            continue
        accepted.append(what)
    assert accepted == []


@pytest.mark.parametrize(
    "mutate, error, message",
    [
        (lambda r: replace(r, leaf_index=2), RootMismatchError, "receipt inclusion proof does not match the signed checkpoint: inclusion proof for leaf 2 leads to root"),
        (lambda r: replace(r, leaf_index=4), FormatError, "an inclusion proof for leaf 4 in a tree of size 5 has 1 hash, got 3"),
        (lambda r: replace(r, leaf_index=5), VerificationError, "receipt leaf index 5 is not covered by its checkpoint \\(tree size 5\\)"),
        (lambda r: replace(r, inclusion_proof=r.inclusion_proof[:-1]), FormatError, "receipt inclusion proof does not match the signed checkpoint: an inclusion proof for leaf 3 in a tree of size 5 has 3 hashes, got 2"),
        (lambda r: replace(r, election="other"), VerificationError, f"receipt checkpoint is for another election: log origin '{ORIGIN}' does not name election 'other'"),
        (lambda r: replace(r, leaf=r.leaf.replace(b'"ballot"', b'"postal"')), RootMismatchError, "inclusion proof for leaf 3 leads to root"),
        (lambda r: replace(r, leaf=r.leaf + b" "), FormatError, "receipt leaf: leaf is not in canonical JSON form"),
        (lambda r: replace(r, checkpoint=r.checkpoint.replace("\n5\n", "\n6\n")), VerificationError, f"receipt checkpoint: signature by {CHECKPOINT_NAME} \\(key ID [0-9a-f]{{8}}\\) does not verify over the note text"),
        (lambda r: replace(r, checkpoint=r.checkpoint.replace(CHECKPOINT_NAME + " ", "evil.example/key ")), VerificationError, f"receipt checkpoint: note has no signature by a trusted key \\(trusted: {CHECKPOINT_NAME} \\([0-9a-f]{{8}}\\); signed by: evil.example/key \\("),
        (lambda r: replace(r, checkpoint=r.checkpoint[:-1]), FormatError, "receipt checkpoint: note must end with a newline"),
    ],
)
def test_each_kind_of_tampering_is_reported_precisely(election, receipt, mutate, error, message):
    with pytest.raises(error, match=message):
        verify_receipt(mutate(receipt), election.bundle)


def test_a_receipt_whose_leaf_belongs_to_another_election_is_rejected():
    e = Election()
    leaf = Leaf.new("other-election", "ballot", {}).to_bytes()
    e.leaves.append(leaf)
    e.tree.append([leaf_hash(leaf)])
    with pytest.raises(VerificationError, match="receipt leaf is for election 'other-election', but the receipt is for 'leader-2022'"):
        verify_receipt(e.receipt(0, e.checkpoint()), e.bundle)


def test_a_checkpoint_signed_by_the_tally_key_is_not_a_valid_receipt_checkpoint(election):
    note = election.checkpoint(key=election.tally_key, name=TALLY_NAME)
    with pytest.raises(VerificationError, match="receipt checkpoint: note has no signature by a trusted key"):
        verify_receipt(election.receipt(0, note), election.bundle)


def test_a_receipt_checked_against_another_ceremonys_keys_is_rejected(receipt):
    other = Election().bundle
    trusted = other.verifier(CHECKPOINT)
    with pytest.raises(VerificationError, match=f"receipt checkpoint: note has no signature by a trusted key \\(trusted: "
                                                f"{CHECKPOINT_NAME} \\({trusted.key_id.hex()}\\); signed by: {CHECKPOINT_NAME} \\("):
        verify_receipt(receipt, other)


# --- the later checkpoint -------------------------------------------------------------------

@pytest.fixture(scope="module")
def grown():
    e = Election()
    e.cast(5)
    receipt = e.receipt(2, e.checkpoint())
    e.cast(4)
    return e, receipt, e.checkpoint(), e.tree.consistency_proof(5, 9)


def test_a_forked_log_is_detected_by_the_consistency_proof(grown):
    e, receipt, later, proof = grown
    fork = Election()
    fork.checkpoint_key, fork.bundle = e.checkpoint_key, e.bundle
    fork.leaves = list(e.leaves[:5])
    fork.tree.append([leaf_hash(x) for x in fork.leaves[:4]] + [leaf_hash(b"rewritten")])
    fork.cast(4)
    with pytest.raises(RootMismatchError, match="later checkpoint is not consistent with the receipt's checkpoint"):
        verify_receipt(receipt, e.bundle, fork.checkpoint(), fork.tree.consistency_proof(5, 9))


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda later, proof: (later, None), FormatError, "a consistency proof from size 5 to size 9 is needed"),
        (lambda later, proof: (later, proof[:-1]), FormatError, "later checkpoint is not consistent with the receipt's checkpoint: a consistency proof from size 5 to size 9 has 5 hashes, got 4"),
        (lambda later, proof: (later, [bytes(32)] + proof[1:]), RootMismatchError, "later checkpoint is not consistent"),
        (lambda later, proof: (later.replace("\n9\n", "\n10\n"), proof), VerificationError, "later checkpoint: signature by .* does not verify"),
        (lambda later, proof: (None, proof), FormatError, "a consistency proof was given without the later checkpoint"),
    ],
)
def test_a_bad_later_checkpoint_or_proof_is_rejected(grown, change, error, message):
    e, receipt, later, proof = grown
    later, proof = change(later, proof)
    with pytest.raises(error, match=message):
        verify_receipt(receipt, e.bundle, later, proof)


def test_a_later_checkpoint_that_is_smaller_or_for_another_election_is_rejected(grown):
    e, receipt, later, proof = grown
    smaller = sign_checkpoint(Checkpoint(ORIGIN, 4, e.tree.root(4)), CHECKPOINT_NAME, e.checkpoint_key)
    with pytest.raises(VerificationError, match="later checkpoint has tree size 4, smaller than the receipt's 5: the log shrank"):
        verify_receipt(receipt, e.bundle, smaller, [])
    elsewhere = sign_checkpoint(Checkpoint(origin_for("vote.example.org", "other"), 9, e.tree.root(9)), CHECKPOINT_NAME,
                                e.checkpoint_key)
    with pytest.raises(VerificationError, match=f"later checkpoint is for log 'vote.example.org/other', not '{ORIGIN}'"):
        verify_receipt(receipt, e.bundle, elsewhere, proof)


# --- the documented recipes and examples (docs/FORMATS.md) ------------------------------------

FORMATS = Path(__file__).resolve().parent.parent / "docs" / "FORMATS.md"


def _doc_blocks(language: str) -> list[str]:
    """The fenced code blocks of FORMATS.md in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", FORMATS.read_text(encoding="utf-8"), re.S | re.M)


def _doc_example(name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\n```[a-z]*\n(.*?)^```$", FORMATS.read_text(encoding="utf-8"), re.S | re.M)
    assert match, f"no example:{name} in FORMATS.md"
    return match.group(1)


def test_the_worked_examples_in_formats_md_verify():
    bundle = KeyBundle.from_json(_doc_example("keys"))
    receipt = Receipt.from_json(_doc_example("receipt"))
    assert receipt.checkpoint == _doc_example("checkpoint")
    assert receipt.leaf == _doc_example("leaf").rstrip("\n").encode()
    result = verify_receipt(receipt, bundle, _doc_example("tally"))
    assert summary_line(result) in FORMATS.read_text(encoding="utf-8")


@pytest.fixture
def receipt_on_disk(tmp_path):
    e = Election(checkpoint_algorithm=ECDSA_P256, tally_algorithm=ED25519)
    e.cast(3)
    (tmp_path / "receipt.json").write_text(e.receipt(1, e.checkpoint()).to_json(), encoding="utf-8")
    (tmp_path / "keys.json").write_text(e.bundle.to_json(), encoding="utf-8")
    tally = e.checkpoint(["tally leader sunak 2", "tally leader truss 1"], key=e.tally_key, name=TALLY_NAME)
    (tmp_path / "tally.note").write_text(tally, encoding="utf-8")
    return tmp_path


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-euc", script], cwd=cwd, capture_output=True, text=True)


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("openssl", "jq", "sed", "base64", "bash")), reason="needs openssl, jq, sed, base64, bash"
)


@needs_tools
def test_the_documented_shell_recipe_verifies_the_checkpoint_signature_with_openssl(receipt_on_disk):
    recipe = _doc_blocks("sh")[0]
    assert "openssl dgst -sha256 -verify key.pem -signature sig.der note.txt" in recipe
    result = _run(recipe, receipt_on_disk)
    assert (result.returncode, result.stdout.strip()) == (0, "Verified OK"), result.stderr
    text = (receipt_on_disk / "note.txt").read_text(encoding="utf-8")
    assert text.startswith(f"{ORIGIN}\n3\n") and text.endswith("=\n") and text.count("\n") == 3

    tampered = receipt_on_disk / "note.txt"
    tampered.write_text(text.replace("\n3\n", "\n4\n"))
    bad = _run("openssl dgst -sha256 -verify key.pem -signature sig.der note.txt", receipt_on_disk)
    assert bad.returncode != 0 and "Verification failure" in bad.stdout + bad.stderr


@needs_tools
def test_the_documented_python_one_liners_plus_openssl_verify_the_signature(receipt_on_disk):
    recipe = _doc_blocks("sh")[1].replace("python3 ", f"{sys.executable} ")
    result = _run(recipe, receipt_on_disk)
    assert (result.returncode, result.stdout.strip()) == (0, "Verified OK"), result.stderr


@needs_tools
def test_the_documented_ed25519_recipe_verifies_the_tally_signature(receipt_on_disk):
    result = _run(_doc_blocks("sh")[2], receipt_on_disk)
    assert (result.returncode, result.stdout.strip()) == (0, "Signature Verified Successfully"), result.stderr


def test_verification_code_imports_neither_flask_nor_pkcs11():
    code = (
        "import sys, hsm_signer.verify, hsm_signer.log.tree, hsm_signer.bundle; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0].lower() in {'flask', 'pkcs11', 'pykcs11', 'werkzeug'}); "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
