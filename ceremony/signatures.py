"""``transcript.sig.json``: the transcript head signed by each new signing key.

The signature is a c2sp.org/signed-note over :func:`~ceremony.transcript.head_statement`
(ceremony id, number of entries covered, head hash), with one signature line per key
under its note key name ``<ceremony-id>/<purpose>``: ECDSA P-256 signs SHA-256 of the
text (ASN.1 DER), Ed25519 signs the text. A valid signature proves that whoever held the
keys in the HSM vouched for exactly this transcript. The file::

    {"version": "hsm-signer/transcript-signatures/v1", "ceremony_id": ..., "entries": N,
     "head": "<hex>", "signers": [{"purpose", "label", "note_key_name", "fingerprint"}...],
     "note": "<the signed note>"}

It is written in one fixed form (sorted keys, two-space indent, final newline) and the
checker refuses any other form, so every byte of the file matters. Checking does no I/O
and never imports PKCS#11.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from hsm_signer.bundle import KeyEntry
from hsm_signer.canonical import loads_strict
from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.log.note import open_note, parse_note, sign_note
from hsm_signer.signer import Signer, fingerprint

from .transcript import head_statement

SIGNATURES_FILE = "transcript.sig.json"
VERSION = "hsm-signer/transcript-signatures/v1"
FIELDS = ("version", "ceremony_id", "entries", "head", "signers", "note")
SIGNER_FIELDS = ("purpose", "label", "note_key_name", "fingerprint")


def _signer_record(entry: KeyEntry) -> dict[str, str]:
    return {name: getattr(entry, name) for name in SIGNER_FIELDS}


def serialise(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def sign_head(ceremony_id: str, entries: int, head: str, signers: Sequence[tuple[KeyEntry, Signer]]) -> bytes:
    """Sign the head with each ``(entry, signer)``; return the bytes of ``transcript.sig.json``."""
    if not signers:
        raise ValueError("nobody to sign the transcript head")
    text = head_statement(ceremony_id, entries, head)
    lines = []
    for entry, signer in signers:
        if entry.note_key_name is None:
            raise ValueError(f"key {entry.label!r} is not a signing key; it cannot sign the transcript head")
        note = sign_note(text, entry.note_key_name, signer)  # verified before it is returned
        lines.append(note[len(text) + 1:])
    doc = {
        "version": VERSION, "ceremony_id": ceremony_id, "entries": entries, "head": head,
        "signers": [_signer_record(entry) for entry, _ in signers],
        "note": text + "\n" + "".join(lines),
    }
    return serialise(doc)


def check_signatures(data: bytes, ceremony_id: str, entries: int, head: str, keys: Sequence[KeyEntry]) -> list[str]:
    """Check ``transcript.sig.json`` against the transcript head and the keys that must have signed.

    Returns report lines; raises :class:`VerificationError` naming the problem.
    """
    name = SIGNATURES_FILE
    try:
        doc = loads_strict(data)
    except FormatError as exc:
        raise FormatError(f"{name}: {exc}") from None
    if not isinstance(doc, dict) or sorted(doc) != sorted(FIELDS):
        raise FormatError(f"{name} must be a JSON object with exactly the fields {', '.join(FIELDS)}")
    if serialise(doc) != data:
        raise FormatError(f"{name} is not in the form hsm-signer writes (sorted keys, 2-space indent); it was edited")
    if doc["version"] != VERSION:
        raise FormatError(f"{name}: version must be {VERSION!r}, got {doc['version']!r}")
    if doc["ceremony_id"] != ceremony_id:
        raise VerificationError(f"{name}: ceremony_id is {doc['ceremony_id']!r}, but the transcript is of {ceremony_id!r}")
    if doc["entries"] != entries:
        raise VerificationError(
            f"{name}: signs {doc['entries']!r} transcript entries, but the transcript has {entries} to be signed: "
            "entries were added or removed after signing, or the count was changed")
    if doc["head"] != head:
        raise VerificationError(
            f"{name}: the signed head {doc['head']!r} is not the transcript's head {head}: "
            "the transcript's last signed line was changed (or the head in the signature file was)")
    expected = [_signer_record(k) for k in keys]
    if doc["signers"] != expected:
        raise VerificationError(
            f"{name}: signers do not match the signing keys (expected {', '.join(k.note_key_name or '' for k in keys)}); "
            "the list was changed")
    note = doc["note"]
    if not isinstance(note, str):
        raise FormatError(f"{name}: note must be a string")
    try:
        text, signatures = parse_note(note)
    except FormatError as exc:
        raise FormatError(f"{name}: the signed note is malformed: {exc}") from None
    statement = head_statement(ceremony_id, entries, head)
    if text != statement:
        raise VerificationError(f"{name}: the signed note's text is not the statement over this transcript's head")
    if len(signatures) != len(keys):
        raise VerificationError(f"{name}: the note has {len(signatures)} signatures, expected one per signing key ({len(keys)})")
    lines = []
    for key in keys:
        try:
            open_note(note, [key.verifier()])
        except VerificationError as exc:
            raise VerificationError(f"{name}: signature by the {key.purpose} key {key.label!r} fails: {exc}") from None
        lines.append(f"transcript head signed by the {key.purpose} key {key.label} ({key.algorithm}, {fingerprint(key.public_key_der)[:16]}...)")
    return lines
