"""c2sp.org/signed-note: text signed by one or more keys, with Ed25519 (0x01) and ECDSA (0x02).

This is the one module that encodes note signatures. A note is a text ending in a
newline, a blank line, then signature lines ``— <key name> base64(key ID || signature)``.

* Ed25519, type 0x01: PureEdDSA over the note text;
  key ID = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4].
* ECDSA P-256, type 0x02 (as in github.com/transparency-dev/formats and DESIGN.md):
  ASN.1 DER ECDSA signature over SHA-256(note text); key ID = SHA-256(DER SPKI)[:4]
  (the key name is *not* hashed into this key ID).

Verifier keys are ``<name>+<8 hex key ID>+base64(type || key)``, where key is the 32 raw
bytes for Ed25519 and the DER SubjectPublicKeyInfo for ECDSA.

Parsing is strict and verification raises, never returns False. This module signs only
through the :class:`~hsm_signer.signer.Signer` interface and must never import PKCS#11.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..errors import FormatError, VerificationError
from ..signer import ECDSA_P256, ED25519, Signer, algorithm_of, load_public_key, verify_signature

SIG_TYPE_ED25519 = 0x01
SIG_TYPE_ECDSA = 0x02
SIG_TYPES = {ED25519: SIG_TYPE_ED25519, ECDSA_P256: SIG_TYPE_ECDSA}
ALGORITHM_OF_TYPE = {v: k for k, v in SIG_TYPES.items()}
EM_DASH = "\u2014"
SIGNATURE_PREFIX = EM_DASH + " "
MAX_SIGNATURES = 100  # the spec requires accepting at least 16
KEY_ID_SIZE = 4
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


# --- encoding helpers -------------------------------------------------------------------

def b64decode_strict(text: str, what: str) -> bytes:
    """Standard padded base64 (RFC 4648 §4), rejecting anything that does not re-encode identically."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise FormatError(f"{what} is not valid base64", "base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise FormatError(f"{what} is not canonical padded base64", "base64")
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def check_key_name(name: object) -> str:
    """Key names are non-empty and contain no Unicode space, no '+' and no control character."""
    if not isinstance(name, str) or not name:
        raise FormatError(f"key name must be a non-empty string, got {name!r}", "note.key-name")
    bad = next((ch for ch in name if ch.isspace() or ch == "+" or ord(ch) < 0x20 or ch == "\x7f"), None)
    if bad is not None:
        raise FormatError(f"key name {name!r} must not contain spaces, '+' or control characters (found {bad!r})", "note.key-name")
    return name


def check_note_text(text: object) -> bytes:
    """Check the text part of a note; return its UTF-8 bytes."""
    if not isinstance(text, str):
        raise FormatError(f"note text must be a string, got {type(text).__name__}", "note.syntax")
    if not text.endswith("\n"):
        raise FormatError("note text must end with a newline", "note.syntax")
    _check_characters(text, "note text")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("note text is not valid Unicode (lone surrogate)", "note.syntax") from None


_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def _check_characters(s: str, what: str) -> None:
    found = _CONTROL.search(s)  # notes are checked by the million in an audit: no Python loop
    if found:
        i, ch = found.start(), found.group()
        line = s.count("\n", 0, i) + 1
        raise FormatError(f"{what} contains control character U+{ord(ch):04X} on line {line}; only newline is allowed", "note.syntax")


def _ed25519_raw(public_key_der: bytes) -> bytes:
    key = load_public_key(public_key_der)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, public_key_der: bytes) -> bytes:
    """The 4-byte note key ID of a key (see the module docstring for the two rules)."""
    check_key_name(name)
    if algorithm_of(public_key_der) == ED25519:
        material = name.encode("utf-8") + b"\n" + bytes([SIG_TYPE_ED25519]) + _ed25519_raw(public_key_der)
    else:
        material = public_key_der
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def verifier_key(name: str, public_key_der: bytes) -> str:
    """The published verifier key string ``<name>+<hex key ID>+<base64(type || key)>``."""
    return NoteVerifier.from_public_key(name, public_key_der).to_string()


# --- verifiers --------------------------------------------------------------------------

@dataclass(frozen=True)
class NoteVerifier:
    """A trusted public key under a note key name."""

    name: str
    key_id: bytes
    algorithm: str
    public_key_der: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key_der: bytes) -> "NoteVerifier":
        check_key_name(name)
        try:
            algorithm = algorithm_of(public_key_der)
        except VerificationError as exc:
            raise FormatError(str(exc), "note.verifier-key") from None
        return cls(name=name, key_id=key_id(name, public_key_der), algorithm=algorithm, public_key_der=public_key_der)

    @classmethod
    def from_string(cls, vkey: str) -> "NoteVerifier":
        """Parse ``<name>+<hex key ID>+<base64(type || key)>`` and check the key ID."""
        if not isinstance(vkey, str):
            raise FormatError(f"verifier key must be a string, got {type(vkey).__name__}", "note.verifier-key")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise FormatError("verifier key must have the form <name>+<hex key id>+<base64 key>", "note.verifier-key")
        name, hex_id, b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(hex_id):
            raise FormatError(f"verifier key ID must be 8 lowercase hex digits, got {hex_id!r}", "note.verifier-key")
        raw = b64decode_strict(b64, "verifier key material")
        if len(raw) < 2:
            raise FormatError("verifier key material is too short", "note.verifier-key")
        sig_type, key = raw[0], raw[1:]
        if sig_type == SIG_TYPE_ED25519:
            if len(key) != 32:
                raise FormatError(f"an Ed25519 verifier key has 32 key bytes, got {len(key)}", "note.verifier-key")
            der = ed25519.Ed25519PublicKey.from_public_bytes(key).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        elif sig_type == SIG_TYPE_ECDSA:
            try:
                parsed = load_public_key(key)
            except VerificationError as exc:
                raise FormatError(f"ECDSA verifier key: {exc}", "note.verifier-key") from None
            if isinstance(parsed, ed25519.Ed25519PublicKey):
                raise FormatError("verifier key has type 0x02 (ECDSA) but holds an Ed25519 key", "note.verifier-key")
            der = parsed.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            if der != key:
                raise FormatError("ECDSA verifier key is not a canonical DER SubjectPublicKeyInfo", "note.verifier-key")
        else:
            raise FormatError(f"verifier key has unsupported signature type 0x{sig_type:02x}; supported: 0x01 Ed25519, 0x02 ECDSA", "note.verifier-key")
        verifier = cls.from_public_key(name, der)
        if verifier.key_id.hex() != hex_id:
            raise FormatError(f"verifier key ID {hex_id} does not match its key (expected {verifier.key_id.hex()})", "note.verifier-key")
        return verifier

    @property
    def signature_type(self) -> int:
        return SIG_TYPES[self.algorithm]

    def to_string(self) -> str:
        key = _ed25519_raw(self.public_key_der) if self.algorithm == ED25519 else self.public_key_der
        return f"{self.name}+{self.key_id.hex()}+{b64encode(bytes([self.signature_type]) + key)}"

    def verify(self, text: str | bytes, signature: bytes) -> None:
        """Check ``signature`` (without the key ID prefix) over the note text; raise VerificationError."""
        message = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        try:
            verify_signature(self.public_key_der, message, signature)
        except VerificationError:
            raise VerificationError(
                f"signature by {self.name} (key ID {self.key_id.hex()}) does not verify over the note text",
                "note.signature-invalid",
            ) from None


# --- notes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoteSignature:
    """One parsed signature line."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(self.key_id + self.signature)}\n"


def sign_note(text: str, name: str, signer: Signer) -> str:
    """Sign ``text`` with ``signer`` under key name ``name``; return the signed note.

    The fresh signature is verified before it is returned, so a faulty or misconfigured
    signer cannot put an unverifiable note into circulation.
    """
    message = check_note_text(text)
    verifier = NoteVerifier.from_public_key(name, signer.public_key_der)
    signature = signer.sign(message)
    verifier.verify(message, signature)
    return text + "\n" + NoteSignature(name, verifier.key_id, signature).line()


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines, checking syntax only."""
    if isinstance(note, (bytes, bytearray)):
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"note is not valid UTF-8 (byte {exc.start})", "note.syntax") from None
    if not isinstance(note, str):
        raise FormatError(f"note must be text, got {type(note).__name__}", "note.syntax")
    _check_characters(note, "note")
    if not note.endswith("\n"):
        raise FormatError("note must end with a newline", "note.syntax")
    split = note.rfind("\n\n")
    if split < 0:
        raise FormatError("note has no blank line separating the text from the signatures", "note.syntax")
    text, block = note[: split + 1], note[split + 2 :]
    check_note_text(text)
    lines = block[:-1].split("\n") if block else []
    if not lines:
        raise FormatError("note has no signature lines after the blank line", "note.syntax")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError(f"note has {len(lines)} signature lines; at most {MAX_SIGNATURES} are accepted", "note.syntax")
    signatures: list[NoteSignature] = []
    lines_seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        where = f"signature line {number}"
        if not line.startswith(SIGNATURE_PREFIX):
            raise FormatError(f"{where} must start with an em dash (U+2014) and a space: {line[:40]!r}", "note.syntax")
        fields = line[len(SIGNATURE_PREFIX):].split(" ")
        if len(fields) != 2:
            raise FormatError(f"{where} must be '— <key name> <base64 signature>' with single spaces", "note.syntax")
        name, b64 = fields
        try:
            check_key_name(name)
        except FormatError as exc:
            raise exc.within(where) from None
        raw = b64decode_strict(b64, f"{where} ({name}) signature")
        if len(raw) <= KEY_ID_SIZE:
            raise FormatError(f"{where} ({name}) signature is too short: {len(raw)} bytes, need a 4-byte key ID and a signature", "note.syntax")
        if line in lines_seen:
            continue  # an identical line says nothing new (a note merged from two copies)
        lines_seen.add(line)
        signatures.append(NoteSignature(name, raw[:KEY_ID_SIZE], raw[KEY_ID_SIZE:]))
    return text, signatures


def open_note(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify a signed note against trusted ``verifiers``; return its text and the verified key names.

    As c2sp.org/signed-note requires, a signature is checked only when its key name *and*
    key ID both match a trusted key; every other signature is ignored, even one under a
    trusted name with another key ID (so a note signed by an old and a new key during a
    rotation verifies for someone who trusts only one of them). A trusted key's signature
    that fails to verify rejects the whole note, and so do two different signatures by
    one trusted key; a note with no verified signature by a trusted key is rejected.
    """
    text, signatures = parse_note(note)
    trusted = {(v.name, v.key_id): v for v in verifiers}
    verified: list[str] = []
    checked: set[tuple[str, bytes]] = set()
    for sig in signatures:
        verifier = trusted.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if (sig.name, sig.key_id) in checked:
            raise FormatError(f"note carries two different signatures by {sig.name} with key ID {sig.key_id.hex()}", "note.signature-repeated")
        checked.add((sig.name, sig.key_id))
        verifier.verify(text, sig.signature)
        verified.append(sig.name)
    if not verified:
        found = ", ".join(f"{s.name} ({s.key_id.hex()})" for s in signatures)
        wanted = ", ".join(sorted(f"{name} ({key.hex()})" for name, key in trusted)) or "none"
        raise VerificationError(f"note has no signature by a trusted key (trusted: {wanted}; signed by: {found})", "note.no-trusted-signature")
    return text, verified
