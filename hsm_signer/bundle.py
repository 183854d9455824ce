"""The published key bundle ``keys/<ceremony-id>/keys.json``: reading, validating, writing.

The bundle is what voters and auditors trust: the public halves of the checkpoint and
tally keys (PEM, note verifier key, fingerprint), the public half of the sealing key
(PEM, raw uncompressed point for HPKE, fingerprint: ballots are sealed to it) and the
identity (label, id, never the secret) of the code-hmac key. Loading is strict: unknown or missing fields, a PEM that
does not parse, a verifier key, key name or fingerprint that does not match the PEM are
all :class:`~hsm_signer.errors.FormatError` naming the field path (``keys[1].fingerprint``).

Other files in the bundle directory (ceremony transcript, signatures) belong to the
ceremony and are ignored here. This module must never hold or accept private key
material, and never import PKCS#11.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .canonical import loads_strict
from .errors import FormatError, VerificationError
from .log.leaf import ID_PATTERN
from .log.note import NoteVerifier, check_key_name
from .signer import ALGORITHMS, ECDSA_P256, algorithm_of, fingerprint, pem_of

KEYS_VERSION = "hsm-signer/keys/v1"
KEYS_FILE = "keys.json"
CHECKPOINT = "checkpoint"
TALLY = "tally"
CODE_HMAC = "code-hmac"
SEALING = "sealing"
HMAC_SHA256 = "hmac-sha256"
ECDH_P256 = "ecdh-p256"
SIGNING_PURPOSES = (CHECKPOINT, TALLY)
SIGNING_AND_MAC_PURPOSES = (*SIGNING_PURPOSES, CODE_HMAC)
PURPOSES = (*SIGNING_AND_MAC_PURPOSES, SEALING)
SIGNING_FIELDS = ("purpose", "algorithm", "label", "id", "public_key_pem", "note_key_name", "note_verifier_key", "fingerprint")
MAC_FIELDS = ("purpose", "algorithm", "label", "id")
SEALING_FIELDS = ("purpose", "algorithm", "label", "id", "public_key_pem", "public_key_point", "fingerprint")
_FIELDS = {CODE_HMAC: MAC_FIELDS, SEALING: SEALING_FIELDS}
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
    """One key of the bundle. Signing and sealing keys carry their public half; the code-hmac key only its identity."""

    purpose: str
    algorithm: str
    label: str
    id: str
    public_key_pem: str | None = None
    note_key_name: str | None = None
    note_verifier_key: str | None = None
    fingerprint: str | None = None
    public_key_point: str | None = None

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

    @classmethod
    def for_sealing_key(cls, label: str, id: str, point: bytes) -> "KeyEntry":
        """Build the sealing entry from the uncompressed P-256 point read from the HSM."""
        der = _der_of_point(point, "public_key_point")
        return cls(purpose=SEALING, algorithm=ECDH_P256, label=label, id=id, public_key_pem=pem_of(der),
                   public_key_point=base64.b64encode(point).decode("ascii"), fingerprint=fingerprint(der)).validated()

    def _required_field(self, name: str, path: str, role: str) -> str:
        value = getattr(self, name)
        if not isinstance(value, str) or not value:
            raise _fail(f"{path}.{name}", f"is required for {role}")
        return value

    @property
    def is_signing_key(self) -> bool:
        return self.purpose in SIGNING_PURPOSES

    @property
    def is_sealing_key(self) -> bool:
        return self.purpose == SEALING

    @property
    def public_key_der(self) -> bytes:
        if not (self.is_signing_key or self.is_sealing_key):
            raise FormatError(f"the {self.purpose} key has no public key", "bundle.missing-key")
        return _der_of_pem(self.public_key_pem or "", "public_key_pem")

    @property
    def sealing_point(self) -> bytes:
        """The sealing key as the 65-byte uncompressed point HPKE seals to."""
        if not self.is_sealing_key:
            raise FormatError(f"the {self.purpose} key is not a sealing key", "bundle.missing-key")
        return base64.b64decode(self.public_key_point or "")

    def verifier(self) -> NoteVerifier:
        """The note verifier for this key (signing keys only)."""
        if not self.is_signing_key:
            raise FormatError(f"the {self.purpose} key does not sign notes", "bundle.missing-key")
        return NoteVerifier.from_string(self.note_verifier_key or "")

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _FIELDS.get(self.purpose, SIGNING_FIELDS)}

    @classmethod
    def from_dict(cls, obj: object, path: str = "key") -> "KeyEntry":
        fields: tuple[str, ...] = SIGNING_FIELDS
        if isinstance(obj, dict) and isinstance(purpose := obj.get("purpose"), str):
            fields = _FIELDS.get(purpose, SIGNING_FIELDS)
        obj = _check_fields(obj, fields, path)
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
        if self.is_sealing_key:
            return self._validated_sealing(path)
        if not self.is_signing_key:
            if self.algorithm != HMAC_SHA256:
                raise _fail(f"{path}.algorithm", f"the code-hmac key must be {HMAC_SHA256}, got {self.algorithm!r}")
            extra = [n for n in SIGNING_FIELDS if n not in MAC_FIELDS and getattr(self, n) is not None]
            if extra:
                raise _fail(path, f"the code-hmac key has no public key; remove {', '.join(extra)}")
            return self
        if self.algorithm not in ALGORITHMS:
            raise _fail(f"{path}.algorithm", f"must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        signing = {name: self._required_field(name, path, "a signing key") for name in SIGNING_FIELDS}
        der = _der_of_pem(signing["public_key_pem"], f"{path}.public_key_pem")
        actual = algorithm_of(der)
        if actual != self.algorithm:
            raise _fail(f"{path}.algorithm", f"says {self.algorithm} but public_key_pem holds an {actual} key",
                        "bundle.key-mismatch")
        try:
            check_key_name(signing["note_key_name"])
        except FormatError as exc:
            raise _fail(f"{path}.note_key_name", str(exc), exc.code) from None
        try:
            verifier = NoteVerifier.from_string(signing["note_verifier_key"])
        except FormatError as exc:
            raise _fail(f"{path}.note_verifier_key", str(exc), exc.code) from None
        if verifier.public_key_der != der:
            raise _fail(f"{path}.note_verifier_key", "holds a different public key than public_key_pem", "bundle.key-mismatch")
        if verifier.name != self.note_key_name:
            raise _fail(
                f"{path}.note_verifier_key", f"is for key name {verifier.name!r}, but note_key_name is {self.note_key_name!r}",
                "bundle.key-mismatch",
            )
        if not _FINGERPRINT.fullmatch(signing["fingerprint"]):
            raise _fail(f"{path}.fingerprint", "must be 64 lowercase hex digits (SHA-256 of the DER public key)")
        if self.fingerprint != fingerprint(der):
            raise _fail(f"{path}.fingerprint", f"does not match public_key_pem (SHA-256 of its DER is {fingerprint(der)})",
                        "bundle.key-mismatch")
        return self


    def _validated_sealing(self, path: str) -> "KeyEntry":
        if self.algorithm != ECDH_P256:
            raise _fail(f"{path}.algorithm", f"the sealing key must be {ECDH_P256}, got {self.algorithm!r}")
        sealing = {name: self._required_field(name, path, "the sealing key") for name in SEALING_FIELDS}
        extra = [n for n in SIGNING_FIELDS if n not in SEALING_FIELDS and getattr(self, n) is not None]
        if extra:
            raise _fail(path, f"the sealing key does not sign notes; remove {', '.join(extra)}")
        der = _der_of_pem(sealing["public_key_pem"], f"{path}.public_key_pem")
        if algorithm_of(der) != ECDSA_P256:  # i.e. the key is on P-256
            raise _fail(f"{path}.public_key_pem", "the sealing key must be an EC P-256 key")
        try:
            point = base64.b64decode(sealing["public_key_point"], validate=True)
        except (binascii.Error, ValueError):
            raise _fail(f"{path}.public_key_point", "is not base64") from None
        if _der_of_point(point, f"{path}.public_key_point") != der:
            raise _fail(f"{path}.public_key_point", "holds a different public key than public_key_pem")
        if not _FINGERPRINT.fullmatch(sealing["fingerprint"]) or sealing["fingerprint"] != fingerprint(der):
            raise _fail(f"{path}.fingerprint", f"does not match public_key_pem (SHA-256 of its DER is {fingerprint(der)})")
        return self


def _der_of_point(point: bytes, path: str) -> bytes:
    if len(point) != 65 or point[0] != 0x04:
        raise _fail(path, f"must be an uncompressed P-256 point (65 bytes starting 0x04), got {len(point)} bytes")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise _fail(path, "is not a point on P-256") from None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


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

    @property
    def has_sealing_key(self) -> bool:
        return any(entry.is_sealing_key for entry in self.keys)

    def sealing_point(self) -> bytes:
        """The sealing key's uncompressed P-256 point (65 bytes); FormatError if the bundle has none."""
        return self.key(SEALING).sealing_point

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
