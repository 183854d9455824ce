"""The published key bundle ``keys/<ceremony-id>/keys.json``: reading, validating, writing.

The bundle is what voters and auditors trust: the public halves of the checkpoint and
tally keys (PEM, note verifier key, fingerprint) and the identity (label, id, never the
secret) of the code-hmac key. Loading is strict: unknown or missing fields, a PEM that
does not parse, a verifier key, key name or fingerprint that does not match the PEM are
all :class:`~hsm_signer.errors.FormatError` naming the field path (``keys[1].fingerprint``).

Other files in the bundle directory (ceremony transcript, signatures) belong to the
ceremony and are ignored here. This module must never hold or accept private key
material, and never import PKCS#11.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .canonical import loads_strict
from .errors import FormatError, VerificationError
from .log.leaf import ID_PATTERN
from .log.note import NoteVerifier, check_key_name
from .signer import ALGORITHMS, algorithm_of, fingerprint, pem_of

KEYS_VERSION = "hsm-signer/keys/v1"
KEYS_FILE = "keys.json"
CHECKPOINT = "checkpoint"
TALLY = "tally"
CODE_HMAC = "code-hmac"
HMAC_SHA256 = "hmac-sha256"
SIGNING_PURPOSES = (CHECKPOINT, TALLY)
PURPOSES = (*SIGNING_PURPOSES, CODE_HMAC)
SIGNING_FIELDS = ("purpose", "algorithm", "label", "id", "public_key_pem", "note_key_name", "note_verifier_key", "fingerprint")
MAC_FIELDS = ("purpose", "algorithm", "label", "id")
BUNDLE_FIELDS = ("version", "ceremony_id", "created", "keys")
_HEX_ID = re.compile(r"(?:[0-9a-f]{2})+")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def _fail(path: str, message: str, code: str = "bundle.syntax") -> FormatError:
    return FormatError(f"{path}: {message}", code)


def _require_str(obj: dict, name: str, path: str) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise _fail(f"{path}.{name}", f"must be a non-empty string, got {value!r}")
    return value


def _check_fields(obj: object, fields: tuple[str, ...], path: str) -> dict:
    if not isinstance(obj, dict):
        raise _fail(path, f"must be a JSON object, got {type(obj).__name__}")
    missing = [name for name in fields if name not in obj]
    if missing:
        raise _fail(path, f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise _fail(path, f"unknown field(s): {', '.join(unknown)}")
    return obj


@dataclass(frozen=True)
class KeyEntry:
    """One key of the bundle. Signing keys carry their public half; the code-hmac key only its identity."""

    purpose: str
    algorithm: str
    label: str
    id: str
    public_key_pem: str | None = None
    note_key_name: str | None = None
    note_verifier_key: str | None = None
    fingerprint: str | None = None

    @classmethod
    def for_signing_key(cls, purpose: str, label: str, id: str, public_key_der: bytes, note_key_name: str) -> "KeyEntry":
        """Build a checkpoint or tally entry from the DER public key, deriving every public field."""
        verifier = NoteVerifier.from_public_key(note_key_name, public_key_der)
        return cls(
            purpose=purpose,
            algorithm=verifier.algorithm,
            label=label,
            id=id,
            public_key_pem=pem_of(public_key_der),
            note_key_name=note_key_name,
            note_verifier_key=verifier.to_string(),
            fingerprint=fingerprint(public_key_der),
        ).validated()

    @classmethod
    def for_mac_key(cls, label: str, id: str) -> "KeyEntry":
        """Build the code-hmac entry (no public material exists for an HMAC key)."""
        return cls(purpose=CODE_HMAC, algorithm=HMAC_SHA256, label=label, id=id).validated()

    @property
    def is_signing_key(self) -> bool:
        return self.purpose in SIGNING_PURPOSES

    @property
    def public_key_der(self) -> bytes:
        if not self.is_signing_key:
            raise FormatError(f"the {self.purpose} key has no public key", "bundle.missing-key")
        return _der_of_pem(self.public_key_pem or "", "public_key_pem")

    def verifier(self) -> NoteVerifier:
        """The note verifier for this key (signing keys only)."""
        if not self.is_signing_key:
            raise FormatError(f"the {self.purpose} key does not sign notes", "bundle.missing-key")
        return NoteVerifier.from_string(self.note_verifier_key or "")

    def to_dict(self) -> dict:
        fields = SIGNING_FIELDS if self.is_signing_key else MAC_FIELDS
        return {name: getattr(self, name) for name in fields}

    @classmethod
    def from_dict(cls, obj: object, path: str = "key") -> "KeyEntry":
        if isinstance(obj, dict) and obj.get("purpose") == CODE_HMAC:
            fields = MAC_FIELDS
        else:
            fields = SIGNING_FIELDS
        _check_fields(obj, fields, path)
        for name in fields:
            _require_str(obj, name, path)
        return cls(**{name: obj[name] for name in fields}).validated(path)

    def validated(self, path: str = "key") -> "KeyEntry":
        """Return self if every field is valid and consistent; else raise FormatError naming the field."""
        if self.purpose not in PURPOSES:
            raise _fail(f"{path}.purpose", f"must be one of {', '.join(PURPOSES)}, got {self.purpose!r}")
        for name in ("label", "id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise _fail(f"{path}.{name}", f"must be a non-empty string, got {value!r}")
        if not _HEX_ID.fullmatch(self.id):
            raise _fail(f"{path}.id", f"must be lowercase hex (whole bytes), got {self.id!r}")
        if not self.is_signing_key:
            if self.algorithm != HMAC_SHA256:
                raise _fail(f"{path}.algorithm", f"the code-hmac key must be {HMAC_SHA256}, got {self.algorithm!r}")
            extra = [n for n in SIGNING_FIELDS if n not in MAC_FIELDS and getattr(self, n) is not None]
            if extra:
                raise _fail(path, f"the code-hmac key has no public key; remove {', '.join(extra)}")
            return self
        if self.algorithm not in ALGORITHMS:
            raise _fail(f"{path}.algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        for name in SIGNING_FIELDS:
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise _fail(f"{path}.{name}", "is required for a signing key")
        der = _der_of_pem(self.public_key_pem, f"{path}.public_key_pem")
        actual = algorithm_of(der)
        if actual != self.algorithm:
            raise _fail(f"{path}.algorithm", f"says {self.algorithm} but public_key_pem holds an {actual} key",
                        "bundle.key-mismatch")
        try:
            check_key_name(self.note_key_name)
        except FormatError as exc:
            raise _fail(f"{path}.note_key_name", str(exc), exc.code) from None
        try:
            verifier = NoteVerifier.from_string(self.note_verifier_key)
        except FormatError as exc:
            raise _fail(f"{path}.note_verifier_key", str(exc), exc.code) from None
        if verifier.public_key_der != der:
            raise _fail(f"{path}.note_verifier_key", "holds a different public key than public_key_pem", "bundle.key-mismatch")
        if verifier.name != self.note_key_name:
            raise _fail(
                f"{path}.note_verifier_key", f"is for key name {verifier.name!r}, but note_key_name is {self.note_key_name!r}",
                "bundle.key-mismatch",
            )
        if not _FINGERPRINT.fullmatch(self.fingerprint):
            raise _fail(f"{path}.fingerprint", "must be 64 lowercase hex digits (SHA-256 of the DER public key)")
        if self.fingerprint != fingerprint(der):
            raise _fail(f"{path}.fingerprint", f"does not match public_key_pem (SHA-256 of its DER is {fingerprint(der)})",
                        "bundle.key-mismatch")
        return self


def _der_of_pem(pem: str, path: str) -> bytes:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError, UnsupportedAlgorithm) as exc:
        raise _fail(path, f"is not a PEM public key ({exc})", "bundle.public-key") from None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        algorithm_of(der)
    except VerificationError as exc:
        raise _fail(path, str(exc), "bundle.public-key") from None
    return der


@dataclass(frozen=True)
class KeyBundle:
    """The keys of one ceremony, as published in ``keys/<ceremony-id>/keys.json``."""

    ceremony_id: str
    created: str
    keys: tuple[KeyEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(self.keys))
        if not isinstance(self.ceremony_id, str) or not ID_PATTERN.fullmatch(self.ceremony_id):
            raise _fail("ceremony_id", f"must match [a-z0-9][a-z0-9._-]{{0,63}}, got {self.ceremony_id!r}")
        _check_created(self.created)
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.keys):
            if not isinstance(entry, KeyEntry):
                raise _fail(f"keys[{i}]", f"must be a KeyEntry, got {type(entry).__name__}")
            entry.validated(f"keys[{i}]")
            if entry.purpose in seen:
                raise _fail(f"keys[{i}].purpose", f"duplicate purpose {entry.purpose!r} (already keys[{seen[entry.purpose]}])")
            seen[entry.purpose] = i

    def key(self, purpose: str) -> KeyEntry:
        """The bundle's key for ``purpose`` (checkpoint, tally, code-hmac)."""
        for entry in self.keys:
            if entry.purpose == purpose:
                return entry
        raise FormatError(f"key bundle {self.ceremony_id} has no {purpose} key", "bundle.missing-key")

    def verifier(self, purpose: str) -> NoteVerifier:
        """The note verifier for the ``purpose`` key (checkpoint or tally)."""
        return self.key(purpose).verifier()

    def to_dict(self) -> dict:
        return {
            "version": KEYS_VERSION,
            "ceremony_id": self.ceremony_id,
            "created": self.created,
            "keys": [entry.to_dict() for entry in self.keys],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "KeyBundle":
        try:
            obj = loads_strict(text)
        except FormatError as exc:
            raise exc.within("keys.json") from None
        _check_fields(obj, BUNDLE_FIELDS, "keys.json")
        if obj["version"] != KEYS_VERSION:
            raise _fail("version", f"must be {KEYS_VERSION!r}, got {obj['version']!r}")
        for name in ("ceremony_id", "created"):
            if not isinstance(obj[name], str):
                raise _fail(name, f"must be a string, got {type(obj[name]).__name__}")
        if not isinstance(obj["keys"], list):
            raise _fail("keys", f"must be a list, got {type(obj['keys']).__name__}")
        keys = tuple(KeyEntry.from_dict(item, f"keys[{i}]") for i, item in enumerate(obj["keys"]))
        return cls(ceremony_id=obj["ceremony_id"], created=obj["created"], keys=keys)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KeyBundle":
        """Load ``keys.json`` from a bundle directory or from the file itself."""
        path = Path(path)
        file = path / KEYS_FILE if path.is_dir() else path
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise FormatError(f"cannot read key bundle {file}: {exc.strerror}") from None
        try:
            return cls.from_json(data)
        except FormatError as exc:
            raise exc.within(str(file)) from None

    def write(self, directory: str | os.PathLike) -> Path:
        """Write ``keys.json`` into ``directory`` (created if needed); never overwrite an existing file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / KEYS_FILE
        with open(file, "x", encoding="utf-8") as out:
            out.write(self.to_json())
        return file


def _check_created(created: object) -> None:
    if not isinstance(created, str):
        raise _fail("created", f"must be an ISO-8601 string, got {type(created).__name__}")
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        raise _fail("created", f"must be an ISO-8601 date and time such as 2025-01-31T09:00:00Z, got {created!r}") from None
    if moment.tzinfo is None:
        raise _fail("created", f"must include a UTC offset (e.g. 'Z' or '+00:00'), got {created!r}")
