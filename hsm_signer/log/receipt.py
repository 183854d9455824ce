"""Receipts: what a voter keeps to prove their ballot is in the log.

Receipt v2 (sealed ballots): JSON with exactly ``version`` ("hsm-signer/receipt/v2"),
``election``, ``leaf_index``, ``leaf`` (base64 of the exact leaf v2 bytes: the *sealed*
ballot), ``tracker`` (the ballot tracker, :mod:`.tracker`, which must match the leaf),
``inclusion_proof`` (base64 hashes) and ``checkpoint`` (the full signed note).
Receipt v1 (earlier elections, leaf v1 with clear selections) has the same fields but
``tracker`` and still parses. A :class:`Receipt`'s version follows from its leaf: a sealed
leaf makes a v2 receipt.

This module only encodes and decodes; checking a receipt is :mod:`hsm_signer.verify`'s
job. It must never add fields that identify the voter or show the vote (the sealed leaf
carries neither, by design).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..canonical import exact_object, loads_strict
from ..errors import FormatError
from .leaf import SEALED_LEAF_VERSION, check_id
from .tracker import tracker_of
from .merkle import HASH_SIZE
from .note import b64decode_strict, b64encode

RECEIPT_VERSION = "hsm-signer/receipt/v1"
RECEIPT_V2_VERSION = "hsm-signer/receipt/v2"
RECEIPT_VERSIONS = (RECEIPT_V2_VERSION, RECEIPT_VERSION)
FIELDS = ("version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint")
V2_FIELDS = ("version", "election", "leaf_index", "leaf", "tracker", "inclusion_proof", "checkpoint")
MAX_LEAF_INDEX = 2**63 - 1


@dataclass(frozen=True)
class Receipt:
    election: str
    leaf_index: int
    leaf: bytes
    inclusion_proof: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        try:
            check_id(self.election, "election")
        except FormatError as exc:
            raise FormatError(f"receipt.{exc}", exc.code) from None
        if not isinstance(self.leaf_index, int) or isinstance(self.leaf_index, bool) or not 0 <= self.leaf_index <= MAX_LEAF_INDEX:
            raise FormatError(f"receipt.leaf_index must be a non-negative integer, got {self.leaf_index!r}", "receipt.syntax")
        if not isinstance(self.leaf, (bytes, bytearray)) or not self.leaf:
            raise FormatError("receipt.leaf must be non-empty bytes", "receipt.syntax")
        if isinstance(self.inclusion_proof, (str, bytes)) or not isinstance(self.inclusion_proof, Sequence):
            raise FormatError("receipt.inclusion_proof must be a list of hashes", "receipt.syntax")
        for i, h in enumerate(self.inclusion_proof):
            if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
                raise FormatError(f"receipt.inclusion_proof[{i}] must be a {HASH_SIZE}-byte hash", "receipt.syntax")
        if not isinstance(self.checkpoint, str) or not self.checkpoint:
            raise FormatError("receipt.checkpoint must be the signed checkpoint note text", "receipt.syntax")
        object.__setattr__(self, "leaf", bytes(self.leaf))
        object.__setattr__(self, "inclusion_proof", tuple(bytes(h) for h in self.inclusion_proof))

    @property
    def version(self) -> str:
        """v2 for a sealed leaf (leaf v2), v1 otherwise (earlier elections)."""
        return RECEIPT_V2_VERSION if _is_sealed_leaf(self.leaf) else RECEIPT_VERSION

    @property
    def tracker(self) -> str:
        """The ballot tracker of this receipt's entry (:func:`~.tracker.tracker_of`)."""
        return tracker_of(self.leaf)

    def to_dict(self) -> dict:
        sealed = self.version == RECEIPT_V2_VERSION
        return {
            "version": self.version,
            "election": self.election,
            "leaf_index": self.leaf_index,
            "leaf": b64encode(self.leaf),
            **({"tracker": self.tracker} if sealed else {}),
            "inclusion_proof": [b64encode(h) for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }

    def to_json(self) -> str:
        """Pretty JSON in the documented field order, UTF-8 (not ASCII-escaped), ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, obj: object) -> "Receipt":
        if not isinstance(obj, dict):
            raise FormatError(f"receipt must be a JSON object, got {type(obj).__name__}", "json.fields")
        version = obj.get("version")
        if "version" in obj and version not in RECEIPT_VERSIONS:
            raise FormatError(f"receipt.version must be {RECEIPT_V2_VERSION!r} (or {RECEIPT_VERSION!r} for an "
                              f"earlier election), got {version!r}", "receipt.syntax")
        obj = exact_object(obj, V2_FIELDS if version == RECEIPT_V2_VERSION else FIELDS, "receipt")
        for name in ("election", "leaf", "checkpoint", *(("tracker",) if version == RECEIPT_V2_VERSION else ())):
            if not isinstance(obj[name], str):
                raise FormatError(f"receipt.{name} must be a string, got {type(obj[name]).__name__}", "receipt.syntax")
        index = obj["leaf_index"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise FormatError(f"receipt.leaf_index must be an integer, got {type(index).__name__}", "receipt.syntax")
        proof = obj["inclusion_proof"]
        if not isinstance(proof, list):
            raise FormatError(f"receipt.inclusion_proof must be a list, got {type(proof).__name__}", "receipt.syntax")
        hashes = []
        for i, item in enumerate(proof):
            if not isinstance(item, str):
                raise FormatError(f"receipt.inclusion_proof[{i}] must be a base64 string, got {type(item).__name__}", "receipt.syntax")
            raw = b64decode_strict(item, f"receipt.inclusion_proof[{i}]")
            if len(raw) != HASH_SIZE:
                raise FormatError(f"receipt.inclusion_proof[{i}] must decode to {HASH_SIZE} bytes, got {len(raw)}", "receipt.syntax")
            hashes.append(raw)
        leaf = b64decode_strict(obj["leaf"], "receipt.leaf")
        receipt = cls(
            election=obj["election"], leaf_index=index, leaf=leaf, inclusion_proof=tuple(hashes), checkpoint=obj["checkpoint"]
        )
        if receipt.version != version:
            if version == RECEIPT_V2_VERSION:
                raise FormatError("receipt v2 must carry a sealed leaf (hsm-signer/leaf/v2)", "receipt.leaf-version")
            raise FormatError("receipt v1 cannot carry a sealed leaf; a sealed ballot's receipt is v2",
                              "receipt.leaf-version")
        if version == RECEIPT_V2_VERSION and obj["tracker"] != receipt.tracker:
            raise FormatError(f"receipt.tracker {obj['tracker']!r} is not the tracker of its leaf ({receipt.tracker})",
                              "receipt.tracker")
        return receipt

    @classmethod
    def from_json(cls, text: str | bytes) -> "Receipt":
        """Parse a receipt strictly; every error names the offending field."""
        try:
            obj = loads_strict(text)
        except FormatError as exc:
            raise exc.within("receipt") from None
        return cls.from_dict(obj)


def _is_sealed_leaf(leaf: bytes) -> bool:
    """Does ``leaf`` claim leaf v2? (Whether it is a well-formed one is the verifier's check.)"""
    marker = f'"version":"{SEALED_LEAF_VERSION}"'.encode("ascii")
    return leaf.startswith(b"{") and leaf.rstrip().endswith(marker + b"}")
