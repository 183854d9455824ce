"""Offline receipt verification: is this ballot in the log the HSM signed?

Given a receipt and the published key bundle (and optionally a later checkpoint with a
consistency proof), check everything a voter or auditor can check without trusting the
server: the checkpoint signature, the origin, the leaf, the inclusion proof, and that the
later tree extends the receipt's tree. Verification raises
:class:`~hsm_signer.errors.VerificationError` (or its ``FormatError`` /
``RootMismatchError`` subclasses) with a precise reason; it never returns False.

This module does no I/O and must never import Flask or PKCS#11, so that it runs anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from .bundle import CHECKPOINT, TALLY, KeyBundle
from .election import Election
from .errors import FormatError, RootMismatchError, VerificationError
from .log.checkpoint import Checkpoint, check_origin
from .log.leaf import SealedLeaf, parse_leaf
from .log.merkle import leaf_hash, verify_consistency, verify_inclusion
from .log.note import NoteVerifier, open_note, parse_note
from .log.receipt import RECEIPT_V2_VERSION, Receipt
from .log.sealed import padded_size
from .log.tree import InMemoryNodeStore, MerkleTree
from .openings import Opening, check_opening, openings_digest
from .tally import open_tally


@dataclass(frozen=True)
class VerifiedReceipt:
    """What a successful verification established (for the one-line summary)."""

    election: str
    leaf_index: int
    tree_size: int
    key_name: str
    root_hash: bytes
    ballot_id: str
    origin: str
    tracker: str | None = None
    later_tree_size: int | None = None
    later_key_name: str | None = None


@contextmanager
def _step(name: str) -> Iterator[None]:
    """Name the step of the receipt check that a VerificationError comes from (``exc.step``)."""
    try:
        yield
    except VerificationError as exc:
        if exc.step is None:
            exc.step = name
        raise


def _open_signed_checkpoint(note: str, verifiers: Sequence[NoteVerifier], what: str) -> tuple[Checkpoint, str]:
    try:
        text, names = open_note(note, verifiers)
        return Checkpoint.from_text(text), names[0]
    except VerificationError as exc:
        raise exc.within(what) from None


def verify_receipt(
    receipt: Receipt,
    bundle: KeyBundle,
    later_checkpoint: str | None = None,
    consistency_proof: Sequence[bytes] | None = None,
    *,
    origin: str | None = None,
) -> VerifiedReceipt:
    """Check ``receipt`` against ``bundle``; with ``later_checkpoint``, also check the log grew consistently.

    The receipt's checkpoint must be signed by the bundle's checkpoint key. The later
    checkpoint may be signed by the checkpoint key or by the tally key (the final, signed
    tally is a checkpoint too). ``consistency_proof`` proves the receipt's tree is a prefix
    of the later one; it may be omitted only when both trees have the same size.

    The checkpoint's origin line must name the receipt's election (``<origin prefix>/<election>``,
    DESIGN.md); ``origin``, when the caller knows it (from the election record, or the
    election as the service publishes it), must be that line exactly. The origin comes from
    the receipt, so receipts of earlier elections (``hsm-signer/<election>``) still verify.
    The later checkpoint must be of the same log.

    A failure is a VerificationError whose ``step`` names the check that failed, in the
    order the browser verifier reports them: ``keys``, ``checkpoint``, ``leaf``,
    ``inclusion``, ``later-checkpoint``, ``consistency`` (``receipt`` is
    :meth:`Receipt.from_json`'s, before this function runs), and whose ``code`` says what.
    """
    if not isinstance(receipt, Receipt):
        raise FormatError(f"expected a Receipt, got {type(receipt).__name__}")
    with _step("keys"):
        checkpoint_verifier = bundle.verifier(CHECKPOINT)
        tally_verifier = bundle.verifier(TALLY) if any(entry.purpose == TALLY for entry in bundle.keys) else None
    with _step("checkpoint"):
        checkpoint, key_name = _open_signed_checkpoint(receipt.checkpoint, [checkpoint_verifier], "receipt checkpoint")
        try:
            check_origin(checkpoint.origin, receipt.election)
        except FormatError as exc:
            raise VerificationError(f"receipt checkpoint is for another election: {exc}", exc.code) from None
        if origin is not None and checkpoint.origin != origin:
            raise VerificationError(
                f"receipt checkpoint is for log {checkpoint.origin!r}, but election {receipt.election!r} is log "
                f"{origin!r}", "checkpoint.origin")
        origin = checkpoint.origin
    with _step("leaf"):
        try:
            leaf = parse_leaf(receipt.leaf)
        except FormatError as exc:
            raise exc.within("receipt leaf") from None
        if isinstance(leaf, SealedLeaf) != (receipt.version == RECEIPT_V2_VERSION):
            raise FormatError("receipt leaf: a receipt v2 carries a sealed leaf (v2), a receipt v1 a leaf v1",
                              "receipt.leaf-version")
        if leaf.election != receipt.election:
            raise VerificationError(
                f"receipt leaf is for election {leaf.election!r}, but the receipt is for {receipt.election!r}", "leaf.election")
    with _step("inclusion"):
        if receipt.leaf_index >= checkpoint.size:
            raise VerificationError(
                f"receipt leaf index {receipt.leaf_index} is not covered by its checkpoint (tree size {checkpoint.size})",
                "proof.index")
        try:
            verify_inclusion(leaf_hash(receipt.leaf), receipt.leaf_index, checkpoint.size, receipt.inclusion_proof,
                             checkpoint.root_hash)
        except VerificationError as exc:
            raise exc.within("receipt inclusion proof does not match the signed checkpoint") from None

    result = VerifiedReceipt(
        election=receipt.election,
        leaf_index=receipt.leaf_index,
        tree_size=checkpoint.size,
        key_name=key_name,
        root_hash=checkpoint.root_hash,
        ballot_id=leaf.ballot_id,
        origin=checkpoint.origin,
        tracker=receipt.tracker if receipt.version == RECEIPT_V2_VERSION else None,
    )
    if later_checkpoint is None:
        if consistency_proof is not None:
            with _step("consistency"):
                raise FormatError("a consistency proof was given without the later checkpoint it leads to", "proof.unexpected")
        return result

    with _step("later-checkpoint"):
        verifiers = [checkpoint_verifier] if tally_verifier is None else [checkpoint_verifier, tally_verifier]
        later, later_key = _open_signed_checkpoint(later_checkpoint, verifiers, "later checkpoint")
        if later.origin != origin:
            raise VerificationError(f"later checkpoint is for log {later.origin!r}, not {origin!r}", "checkpoint.origin")
    with _step("consistency"):
        if later.size < checkpoint.size:
            raise VerificationError(
                f"later checkpoint has tree size {later.size}, smaller than the receipt's {checkpoint.size}: the log shrank",
                "log.shrank")
        if consistency_proof is None:
            if later.size != checkpoint.size:
                raise FormatError(
                    f"a consistency proof from size {checkpoint.size} to size {later.size} is needed to check the "
                    "later checkpoint", "proof.missing")
            consistency_proof = []
        try:
            verify_consistency(checkpoint.size, later.size, list(consistency_proof), checkpoint.root_hash, later.root_hash)
        except VerificationError as exc:
            raise exc.within("later checkpoint is not consistent with the receipt's checkpoint") from None
    return VerifiedReceipt(**{**result.__dict__, "later_tree_size": later.size, "later_key_name": later_key})


def verify_opened(receipt: Receipt, bundle: KeyBundle, election: Election, tally_note: str,
                  entries: Sequence[bytes], openings: bytes) -> Opening:
    """After close: the opening of the voter's own ballot, checked all the way from the receipt.

    ``entries`` are the election record's log entries in order, ``openings`` the bytes of
    its ``openings.jsonl``, ``tally_note`` its signed tally. Checks that the tally is signed
    by the bundle's tally key, that the entries hash to the tally's tree, that the receipt
    verifies and its checkpoint is a prefix of that tree (so this ballot was counted), that
    ``openings.jsonl`` is the file the tally binds, and re-opens the ballot with its
    published secret. Returns the opening (status, and the selections when valid).
    """
    tally, _ = open_tally(tally_note, bundle)
    if tally.election != receipt.election or tally.election != election.id:
        raise VerificationError(f"the record is of election {tally.election!r}, the receipt of {receipt.election!r}",
                                "record.election")
    if tally.openings is None:
        raise VerificationError("the record's tally binds no openings: the election's ballots were not sealed",
                                "record.not-sealed")
    if len(entries) != tally.size:
        raise VerificationError(f"the record has {len(entries)} entries, the signed tally counts {tally.size}",
                                "record.size")
    tree = MerkleTree(InMemoryNodeStore())
    tree.append([leaf_hash(leaf) for leaf in entries])
    if tree.root() != tally.root_hash:
        raise RootMismatchError("the record's entries do not hash to the root the signed tally binds", "record.root")
    here = Checkpoint.from_text(parse_note(receipt.checkpoint)[0]).size
    verify_receipt(receipt, bundle, tally_note, tree.consistency_proof(here, tally.size))
    if receipt.leaf_index >= len(entries) or entries[receipt.leaf_index] != receipt.leaf:
        raise VerificationError(f"entry {receipt.leaf_index} of the record is not the ballot of this receipt",
                                "record.entry")
    digest = openings_digest(openings)
    if digest != tally.openings:
        raise VerificationError(f"the record's openings hash to {digest}, but the signed tally binds "
                                f"{tally.openings}", "record.openings")
    lines = openings.split(b"\n")
    if len(lines) != len(entries) + 1 or lines[-1]:
        raise FormatError("the record's openings do not have one line per entry", "opening.syntax")
    index = receipt.leaf_index
    opening = Opening.from_line(lines[index], f"opening {index}")
    leaf = SealedLeaf.from_bytes(receipt.leaf)
    check_opening(opening, leaf, election, padded_size(election), index)
    return opening


def summary_line(v: VerifiedReceipt) -> str:
    """One human-readable line describing a verified receipt."""
    what = f"sealed ballot {v.tracker}" if v.tracker else f"ballot {v.ballot_id}"
    line = (
        f"OK: election {v.election}: {what} is leaf {v.leaf_index} of log {v.origin} of "
        f"{v.tree_size} entries, checkpoint signed by {v.key_name}"
    )
    if v.later_tree_size is not None:
        line += f"; the log of {v.later_tree_size} entries signed by {v.later_key_name} contains it"
    return line
