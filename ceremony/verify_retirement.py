"""Checking a retirement bundle: which keys were destroyed, and proof that the retirer held them.

The transcript must be exactly the retirement script; ``retired.json`` must list exactly
the keys matched on the token; each matched key still had the ceremony's attributes; the
head *just before destruction* must be signed by every retired signing key; the entries
after it may only be the destruction records (they are hash-chained to the signed part
but cannot be signed, since the keys no longer exist). When the original ceremony
bundle is available (``--original``, or the sibling directory ``<ceremony-id>``), it is
verified too and the retired keys must be in it, byte for byte the same ``keys.json``.

Pure: no I/O beyond what the caller passed in, never PKCS#11.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from hsm_signer.bundle import KEYS_FILE, KeyEntry
from hsm_signer.canonical import loads_strict
from hsm_signer.errors import FormatError, VerificationError

from .signatures import SIGNATURES_FILE, check_signatures, serialise
from .summary import SUMMARY_FILE, retirement_summary
from .transcript import TRANSCRIPT_FILE, parse_transcript, transcript_head
from .checks import (
    Report, check_key_evidence, check_steps, failure, guarded, load_key_bundle, read_bundle_dir, require_files,
    value_of,
)
from .verify_ceremony import verify_bundle_files

RETIRED_FILE = "retired.json"
RETIREMENT_FILES = (RETIRED_FILE, TRANSCRIPT_FILE, SIGNATURES_FILE, SUMMARY_FILE)
RETIRED_VERSION = "hsm-signer/retired/v1"
RETIRED_FIELDS = ("ceremony_id", "keys", "retirement_id", "version")


def retired_json(retirement_id: str, ceremony_id: str, keys: list[KeyEntry]) -> bytes:
    """The bytes of ``retired.json``: the published entries of the keys a retirement destroyed."""
    return serialise({"version": RETIRED_VERSION, "retirement_id": retirement_id, "ceremony_id": ceremony_id,
                      "keys": [k.to_dict() for k in keys]})


def load_retired(data: bytes) -> dict[str, Any]:
    """Parse ``retired.json`` strictly, in the one form hsm-signer writes."""
    try:
        doc = loads_strict(data)
    except FormatError as exc:
        raise FormatError(f"{RETIRED_FILE}: {exc}") from None
    if not isinstance(doc, dict) or sorted(doc) != list(RETIRED_FIELDS):
        raise FormatError(f"{RETIRED_FILE} must have exactly the fields {', '.join(RETIRED_FIELDS)}")
    if serialise(doc) != data:
        raise FormatError(f"{RETIRED_FILE} is not in the form hsm-signer writes (sorted keys, 2-space indent); it was edited")
    if doc["version"] != RETIRED_VERSION:
        raise FormatError(f"{RETIRED_FILE}: version must be {RETIRED_VERSION!r}, got {doc['version']!r}")
    if not isinstance(doc["keys"], list) or not doc["keys"]:
        raise FormatError(f"{RETIRED_FILE}: keys must be a non-empty list")
    return doc


def verify_retirement_files(files: dict[str, bytes], where: str, original: dict[str, bytes] | None = None,
                            directory: Path | None = None) -> Report:
    require_files(files, RETIREMENT_FILES)
    return guarded(_verify, files, where, original, directory)


def _verify(files: dict[str, bytes], where: str, original: dict[str, bytes] | None,
            directory: Path | None) -> Report:
    raw = files[TRANSCRIPT_FILE]
    entries = parse_transcript(raw)
    head = transcript_head(raw)
    checks = [f"transcript: {len(entries)} entries, hash chain intact, head {head}"]
    opened = entries[0]
    if opened.step != "retirement-opened":
        raise failure(opened, "a retirement transcript starts with retirement-opened")
    retirement_id = value_of(opened, "retirement_id")
    ceremony_id = value_of(opened, "ceremony_id")
    labels = value_of(opened, "labels")
    k = len(labels)
    expected = (["retirement-opened", "roll-call", "environment", "activation"] + ["key-found"] * k
                + ["destruction-authorised"] + ["key-destroyed"] * k + ["retirement-closed"])
    check_steps(entries, expected)
    checks.append(f"script: all {len(expected)} steps of a complete retirement, in order")

    doc = load_retired(files[RETIRED_FILE])
    if (doc["retirement_id"], doc["ceremony_id"]) != (retirement_id, ceremony_id):
        raise VerificationError(f"{RETIRED_FILE}: retirement_id/ceremony_id differ from the transcript")
    try:
        keys = [KeyEntry.from_dict(item, f"{RETIRED_FILE} keys[{i}]") for i, item in enumerate(doc["keys"])]
    except UnsupportedAlgorithm as exc:  # a corrupted PEM can name an unknown key type
        raise FormatError(f"{RETIRED_FILE}: a public key does not parse ({exc})") from None
    found = [e for e in entries if e.step == "key-found"]
    destroyed = [e for e in entries if e.step == "key-destroyed"]
    if [key.label for key in keys] != labels:
        raise VerificationError(f"{RETIRED_FILE} lists {[key.label for key in keys]}, the transcript retires {labels}")
    for i, (key, entry, gone) in enumerate(zip(keys, found, destroyed)):
        if value_of(entry, "key") != key.to_dict():
            raise VerificationError(f"{RETIRED_FILE} keys[{i}] differs from the key matched on the token "
                                    f"({TRANSCRIPT_FILE} line {entry.seq + 1})")
        if key.is_signing_key and key.note_key_name != f"{ceremony_id}/{key.purpose}":
            raise VerificationError(f"{RETIRED_FILE} keys[{i}].note_key_name must be {ceremony_id}/{key.purpose}")
        checks += check_key_evidence(ceremony_id, entry, None, None, key)
        count = value_of(gone, "objects_destroyed")
        if value_of(gone, "label") != key.label or not isinstance(count, int) or count < 1 \
                or value_of(gone, "still_present") is not False:
            raise failure(gone, f"does not record the destruction of {key.label!r}")
        checks.append(f"{key.purpose} key {key.label}: destroyed ({count} objects), no longer on the token")

    signed = len(expected) - k - 1
    _check_unsigned_tail(entries[signed:], entries[0].actor, labels)
    signers = [key for key in keys if key.is_signing_key]
    checks += check_signatures(files[SIGNATURES_FILE], retirement_id, signed, entries[signed].prev, signers)
    checks.append(f"the first {signed} entries (up to destruction) are signed; the {len(entries) - signed} "
                  "destruction records after them are hash-chained")
    if files[SUMMARY_FILE] != retirement_summary(entries, head, signed).encode("utf-8"):
        raise VerificationError(f"{SUMMARY_FILE} does not say what the transcript says; it was edited")
    checks.append(f"{SUMMARY_FILE}: matches the transcript")

    notes = []
    if original is None and directory is not None:
        sibling = directory.resolve().parent / ceremony_id
        if (sibling / KEYS_FILE).is_file():
            original = read_bundle_dir(sibling)
    if original is None:
        notes.append(f"original bundle of ceremony {ceremony_id} not available: retired keys not cross-checked "
                     "(pass --original DIR)")
    else:
        checks += _cross_check(original, opened.data, keys)
    if value_of(opened, "rehearsal"):
        notes.append("this is a REHEARSAL retirement")
    return Report("retirement", retirement_id, where, tuple(checks), tuple(notes))


def _check_unsigned_tail(tail: list[Any], administrator: str, labels: list[str]) -> None:
    """The destruction records cannot be signed, so they may hold nothing but the expected facts."""
    for entry in tail:
        if entry.actor != administrator:
            raise failure(entry, f"is recorded by {entry.actor!r}, but the retirement's administrator is {administrator!r}")
        wanted = ["label", "objects_destroyed", "still_present"] if entry.step == "key-destroyed" else ["retired"]
        if sorted(entry.data) != wanted:
            raise failure(entry, f"must hold exactly {', '.join(wanted)}")
    if tail[-1].data != {"retired": labels}:
        raise failure(tail[-1], f"must list the retired keys {labels}")


def _cross_check(original: dict[str, bytes], opened: dict[str, Any], keys: list[KeyEntry]) -> list[str]:
    try:
        verify_bundle_files(original, "original")
    except VerificationError as exc:
        raise VerificationError(f"the original ceremony bundle does not verify: {exc}") from None
    if hashlib.sha256(original[KEYS_FILE]).hexdigest() != opened.get("original", {}).get("keys_json_sha256"):
        raise VerificationError("the original bundle's keys.json is not the one recorded when the retirement opened")
    bundle = load_key_bundle(original[KEYS_FILE])
    if bundle.ceremony_id != opened.get("ceremony_id"):
        raise VerificationError("the original bundle is of another ceremony")
    published = {k.label: k for k in bundle.keys}
    for key in keys:
        if published.get(key.label) != key:
            raise VerificationError(f"retired key {key.label!r} is not the key published by ceremony {bundle.ceremony_id}")
    return [f"original ceremony bundle {bundle.ceremony_id} verifies and publishes every retired key"]
