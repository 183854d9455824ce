"""Receipt v1: what a voter keeps to prove their ballot is in the log.

JSON with exactly ``version`` ("hsm-signer/receipt/v1"), ``election``, ``leaf_index``,
``leaf`` (base64 of the exact leaf bytes), ``inclusion_proof`` (base64 hashes) and
``checkpoint`` (the full signed note). This module only encodes and decodes; checking a
receipt is :mod:`hsm_signer.verify`'s job. It must never add fields that identify the
voter (the leaf carries none, by design).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..canonical import exact_object, loads_strict
from ..errors import FormatError
from .leaf import check_id
from .merkle import HASH_SIZE
from .note import b64decode_strict, b64encode

RECEIPT_VERSION = "hsm-signer/receipt/v1"
FIELDS = ("version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint")
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

    def to_dict(self) -> dict:
        return {
            "version": RECEIPT_VERSION,
            "election": self.election,
            "leaf_index": self.leaf_index,
            "leaf": b64encode(self.leaf),
            "inclusion_proof": [b64encode(h) for h in self.inclusion_proof],
            "checkpoint": self.checkpoint,
        }

    def to_json(self) -> str:
        """Pretty JSON in the documented field order, UTF-8 (not ASCII-escaped), ending in a newline."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, obj: object) -> "Receipt":
        obj = exact_object(obj, FIELDS, "receipt")
        if obj["version"] != RECEIPT_VERSION:
            raise FormatError(f"receipt.version must be {RECEIPT_VERSION!r}, got {obj['version']!r}", "receipt.syntax")
        for name in ("election", "leaf", "checkpoint"):
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
        return cls(
            election=obj["election"], leaf_index=index, leaf=leaf, inclusion_proof=tuple(hashes), checkpoint=obj["checkpoint"]
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "Receipt":
        """Parse a receipt strictly; every error names the offending field."""
        try:
            obj = loads_strict(text)
        except FormatError as exc:
            raise exc.within("receipt") from None
        return cls.from_dict(obj)
