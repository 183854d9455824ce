"""The log leaf: one ballot (online or postal) as canonical RFC 8785 JSON.

Leaf v2 (:class:`SealedLeaf`) carries the ballot sealed to the election's sealing key and
is what new elections log; leaf v1 (:class:`Leaf`, clear selections) is still read so
that the records of earlier elections verify. :func:`parse_leaf` reads either.

A leaf records *what* was cast, never *who* cast it: it must never carry a voting code,
a voter identity, an IP address or a timestamp. The ballot id is random (128 bits from
:mod:`secrets`) so that a receipt can name its leaf without naming the voter.

Parsing is strict: exactly the documented fields, the documented types, ids matching
``[a-z0-9][a-z0-9._-]{0,63}``, option lists sorted without duplicates, and the bytes
must be the canonical encoding, so that every leaf has exactly one byte form.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from dataclasses import dataclass, field
from types import MappingProxyType

from ..canonical import canonicalize, exact_object, loads_strict
from ..errors import FormatError

LEAF_VERSION = "hsm-signer/leaf/v1"
BALLOT = "ballot"
POSTAL = "postal"
LEAF_TYPES = (BALLOT, POSTAL)
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
BALLOT_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
FIELDS = ("version", "election", "type", "ballot_id", "selections")


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid id (election, contest, option), else raise FormatError."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise FormatError(
            f"{what} must match [a-z0-9][a-z0-9._-]{{0,63}} (lowercase letters, digits, '.', '_', '-'), got {value!r}",
            "id",
        )
    return value


def _check_entry(election: object, type: object, ballot_id: object) -> None:
    """The fields both leaf versions share: election id, entry type, random ballot id."""
    check_id(election, "election")
    if type not in LEAF_TYPES:
        raise FormatError(f"type must be one of {', '.join(LEAF_TYPES)}, got {type!r}", "leaf.syntax")
    if not isinstance(ballot_id, str) or not BALLOT_ID_PATTERN.fullmatch(ballot_id):
        raise FormatError(f"ballot_id must be 32 lowercase hex digits (128 bits), got {ballot_id!r}", "leaf.syntax")


@dataclass(frozen=True)
class Leaf:
    """One log entry. Build new ones with :meth:`Leaf.new`; read them with :meth:`from_bytes`."""

    election: str
    type: str
    ballot_id: str
    selections: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_entry(self.election, self.type, self.ballot_id)
        if not isinstance(self.selections, Mapping):
            raise FormatError(f"selections must be an object, got {type(self.selections).__name__}", "leaf.syntax")
        frozen: dict[str, tuple[str, ...]] = {}
        for contest, options in self.selections.items():
            check_id(contest, "selections contest id")
            if not isinstance(options, (list, tuple)):
                raise FormatError(f"selections.{contest} must be a list of option ids, got {type(options).__name__}", "leaf.syntax")
            for i, option in enumerate(options):
                check_id(option, f"selections.{contest}[{i}]")
            if list(options) != sorted(set(options)):
                raise FormatError(f"selections.{contest} must be sorted and without duplicates, got {list(options)!r}", "leaf.syntax")
            frozen[contest] = tuple(options)
        object.__setattr__(self, "selections", MappingProxyType(dict(sorted(frozen.items()))))

    def __hash__(self) -> int:
        return hash((self.election, self.type, self.ballot_id, tuple(self.selections.items())))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Leaf):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    @classmethod
    def new(cls, election: str, type: str, selections: Mapping[str, Iterable[str]]) -> "Leaf":
        """A fresh leaf with a random ballot id; option lists are sorted (duplicates are an error)."""
        if not isinstance(selections, Mapping):
            raise FormatError(f"selections must be a mapping of contest id to option ids, got {selections.__class__.__name__}", "leaf.syntax")
        prepared: dict[str, Any] = {}  # checked and made tuples by __post_init__
        for contest, options in selections.items():
            if isinstance(options, (str, bytes)):
                raise FormatError(f"selections.{contest} must be a list of option ids, not a single string", "leaf.syntax")
            options = list(options)
            if len(set(options)) != len(options):
                raise FormatError(f"selections.{contest} selects the same option more than once: {options!r}", "leaf.syntax")
            # Non-string options are left in place for __post_init__ to name precisely.
            prepared[contest] = sorted(options) if all(isinstance(o, str) for o in options) else options
        return cls(election=election, type=type, ballot_id=new_ballot_id(), selections=prepared)

    def to_dict(self) -> dict:
        return {
            "version": LEAF_VERSION,
            "election": self.election,
            "type": self.type,
            "ballot_id": self.ballot_id,
            "selections": {contest: list(options) for contest, options in self.selections.items()},
        }

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) UTF-8 JSON bytes that are hashed into the log."""
        return canonicalize(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Leaf":
        """Parse leaf bytes strictly; raise FormatError saying exactly what is wrong."""
        obj = _load(data)
        exact_object(obj, FIELDS, "leaf")
        if obj["version"] != LEAF_VERSION:
            raise FormatError(f"leaf version must be {LEAF_VERSION!r}, got {obj['version']!r}", "leaf.syntax")
        for name in ("election", "type", "ballot_id"):
            if not isinstance(obj[name], str):
                raise FormatError(f"leaf field {name} must be a string, got {type(obj[name]).__name__}", "leaf.syntax")
        if not isinstance(obj["selections"], dict):
            raise FormatError(f"leaf field selections must be an object, got {type(obj['selections']).__name__}", "leaf.syntax")
        try:
            leaf = cls(election=obj["election"], type=obj["type"], ballot_id=obj["ballot_id"], selections=obj["selections"])
        except FormatError as exc:
            raise exc.within("leaf") from None
        if leaf.to_bytes() != bytes(data):
            raise FormatError("leaf is not in canonical JSON form (RFC 8785: sorted keys, no whitespace, minimal escapes)", "leaf.not-canonical")
        return leaf


# --- leaf v2: the sealed ballot ------------------------------------------------------------

SEALED_LEAF_VERSION = "hsm-signer/leaf/v2"
SEALED_FIELDS = ("version", "election", "type", "ballot_id", "sealed")
CHANNEL_OF_TYPE = {BALLOT: "online", POSTAL: "postal"}


@dataclass(frozen=True)
class SealedLeaf:
    """A log entry of leaf v2: the ballot sealed to the election's sealing key, never its
    selections. Build with :meth:`new`, read with :func:`parse_leaf` or :meth:`from_bytes`.

    ``sealed`` is HPKE's ``enc || ct`` (:mod:`hsm_signer.log.sealed`); its ``info`` binds
    this leaf's election, channel and ballot id, so the bytes cannot be moved to another leaf.
    """

    election: str
    type: str
    ballot_id: str
    sealed: bytes

    def __post_init__(self) -> None:
        _check_entry(self.election, self.type, self.ballot_id)
        if not isinstance(self.sealed, (bytes, bytearray)) or not self.sealed:
            raise FormatError("sealed must be the non-empty bytes of a sealed ballot", "leaf.syntax")
        object.__setattr__(self, "sealed", bytes(self.sealed))

    @property
    def channel(self) -> str:
        return CHANNEL_OF_TYPE[self.type]

    @classmethod
    def new(cls, election: str, type: str, sealed: bytes, ballot_id: str | None = None) -> "SealedLeaf":
        return cls(election=election, type=type, ballot_id=ballot_id or new_ballot_id(), sealed=sealed)

    def to_dict(self) -> dict:
        return {"version": SEALED_LEAF_VERSION, "election": self.election, "type": self.type,
                "ballot_id": self.ballot_id, "sealed": base64.b64encode(self.sealed).decode("ascii")}

    def to_bytes(self) -> bytes:
        """The canonical (RFC 8785) UTF-8 JSON bytes that are hashed into the log."""
        return canonicalize(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "SealedLeaf":
        obj = _parse_object(data)
        if obj.get("version") != SEALED_LEAF_VERSION:
            raise FormatError(f"leaf version must be {SEALED_LEAF_VERSION!r}, got {obj.get('version')!r}", "leaf.syntax")
        exact_object(obj, SEALED_FIELDS, "leaf")
        for name in SEALED_FIELDS:
            if not isinstance(obj[name], str):
                raise FormatError(f"leaf field {name} must be a string, got {type(obj[name]).__name__}", "leaf.syntax")
        try:
            sealed = base64.b64decode(obj["sealed"], validate=True)
        except binascii.Error:
            raise FormatError("leaf field sealed is not valid base64", "leaf.syntax") from None
        try:
            leaf = cls(election=obj["election"], type=obj["type"], ballot_id=obj["ballot_id"], sealed=sealed)
        except FormatError as exc:
            raise exc.within("leaf") from None
        if leaf.to_bytes() != bytes(data):
            raise FormatError("leaf is not in canonical JSON form (RFC 8785: sorted keys, no whitespace, minimal escapes)", "leaf.not-canonical")
        return leaf


def new_ballot_id() -> str:
    """A fresh random ballot id: 128 bits from :mod:`secrets`, as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def _load(data: bytes) -> Any:
    """The JSON value of leaf bytes, strictly parsed (either version)."""
    if not isinstance(data, (bytes, bytearray)):
        raise FormatError(f"leaf must be bytes, got {type(data).__name__}", "leaf.syntax")
    try:
        return loads_strict(bytes(data))
    except FormatError as exc:
        raise exc.within("leaf") from None


def _parse_object(data: bytes) -> dict:
    obj = _load(data)
    if not isinstance(obj, dict):
        raise FormatError(f"leaf must be a JSON object, got {type(obj).__name__}", "leaf.syntax")
    return obj


def parse_leaf(data: bytes) -> "Leaf | SealedLeaf":
    """Either leaf version, strictly: v2 (sealed) for new elections, v1 (clear) from earlier records."""
    version = _parse_object(data).get("version")
    if version == SEALED_LEAF_VERSION:
        return SealedLeaf.from_bytes(data)
    if version == LEAF_VERSION:
        return Leaf.from_bytes(data)
    raise FormatError(f"leaf version must be {SEALED_LEAF_VERSION!r} or {LEAF_VERSION!r}, got {version!r}", "leaf.syntax")
