"""Checking a published ceremony bundle (or retirement bundle) with no trust in whoever made it.

:func:`verify_bundle_dir` reads the directory; :func:`verify_bundle_files` does the
checking on the file contents, with no I/O. For a ceremony bundle it checks, in order:

1. the bundle holds exactly ``keys.json``, ``transcript.jsonl``, ``transcript.sig.json``
   and ``SUMMARY.md``;
2. the transcript: canonical lines, consecutive ``seq``, unbroken hash chain;
3. the script: exactly the steps of a complete ceremony, in order, for the officials,
   share holders and keys its opening entry names;
4. each key: ``keys.json`` matches the key recorded at generation, field by field, and
   the hash of ``keys.json`` matches the one the transcript recorded at export;
   attributes read back were sensitive, never extractable, local, always sensitive,
   token objects; reading and wrapping it out were refused; its self-test signature
   verifies with the published public key;
5. the PIN was split as configured, every holder got a share, m shares activated;
6. witnesses attested the head the transcript had at that moment;
7. ``transcript.sig.json``: every signing key of ``keys.json`` signed the transcript head;
8. ``SUMMARY.md`` is exactly what the transcript says.

Any failure raises :class:`VerificationError` naming the file, line or key and what is
wrong. On success it returns a :class:`Report` of what was checked. Retirement bundles
(``retired.json`` instead of ``keys.json``) are checked by :mod:`.verify_retirement`.
This module must never import PKCS#11: auditors run it without an HSM.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cryptography.exceptions import UnsupportedAlgorithm

from hsm_signer.bundle import KEYS_FILE, KeyBundle, KeyEntry
from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.signer import verify_signature

from . import evidence
from .signatures import SIGNATURES_FILE, check_signatures
from .summary import SUMMARY_FILE, ceremony_summary
from .transcript import TRANSCRIPT_FILE, Entry, parse_transcript, transcript_head

CEREMONY_FILES = (KEYS_FILE, TRANSCRIPT_FILE, SIGNATURES_FILE, SUMMARY_FILE)
RETIRED_FILE = "retired.json"


@dataclass(frozen=True)
class Report:
    """What a successful verification checked, for printing."""

    kind: str
    ceremony_id: str
    directory: str
    checks: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def text(self) -> str:
        lines = [f"{self.kind} bundle {self.ceremony_id} ({self.directory})"]
        lines += [f"  OK   {c}" for c in self.checks]
        lines += [f"  NOTE {n}" for n in self.notes]
        lines.append(f"VERIFIED: every check passed for {self.kind} {self.ceremony_id}")
        return "\n".join(lines)


def read_bundle_dir(path: str | os.PathLike) -> dict[str, bytes]:
    directory = Path(path)
    if not directory.is_dir():
        raise FormatError(f"{directory} is not a directory; give the bundle directory (e.g. keys/<ceremony-id>)")
    files = {}
    for item in sorted(directory.iterdir()):
        if not item.is_file():
            raise FormatError(f"unexpected entry {item.name!r} in bundle {directory}: a bundle holds only files")
        files[item.name] = item.read_bytes()
    return files


def verify_bundle_dir(path: str | os.PathLike, *, original: str | os.PathLike | None = None) -> Report:
    """Verify the bundle in directory ``path`` (a retirement bundle may be checked against ``original``)."""
    files = read_bundle_dir(path)
    if RETIRED_FILE in files:
        from .verify_retirement import verify_retirement_files
        original_files = None
        if original is not None:
            original_files = read_bundle_dir(original)
        return verify_retirement_files(files, str(path), original_files, Path(path))
    if original is not None:
        raise FormatError("--original is only for retirement bundles")
    return verify_bundle_files(files, str(path))


def require_files(files: dict[str, bytes], expected: Sequence[str]) -> None:
    missing = [n for n in expected if n not in files]
    if missing:
        raise FormatError(f"bundle is missing {', '.join(missing)}; a bundle holds {', '.join(expected)}")
    extra = sorted(set(files) - set(expected))
    if extra:
        raise FormatError(f"unexpected file{'s' if len(extra) > 1 else ''} {', '.join(extra)} in the bundle; "
                          f"a bundle holds exactly {', '.join(expected)}")


def load_key_bundle(data: bytes) -> KeyBundle:
    """Parse ``keys.json`` strictly; every failure is a FormatError naming the file."""
    try:
        return KeyBundle.from_json(data)
    except FormatError as exc:
        message = str(exc)
        raise FormatError(message if message.startswith(KEYS_FILE) else f"{KEYS_FILE}: {message}") from None
    except UnsupportedAlgorithm as exc:  # a corrupted PEM can name an unknown curve
        raise FormatError(f"{KEYS_FILE}: a public key does not parse ({exc})") from None


def check_steps(entries: Sequence[Entry], expected: Sequence[str]) -> None:
    """The transcript has exactly the ``expected`` steps, in order."""
    for entry, step in zip(entries, expected):
        if entry.step != step:
            raise VerificationError(
                f"{TRANSCRIPT_FILE} line {entry.seq + 1}: step is {entry.step!r}, expected {step!r} "
                "at this point of the script")
    if len(entries) != len(expected):
        what = "ends early" if len(entries) < len(expected) else "has extra entries"
        raise VerificationError(f"{TRANSCRIPT_FILE} {what}: {len(entries)} entries, the script has {len(expected)}")


def _fail(entry: Entry, message: str) -> VerificationError:
    return VerificationError(f"{TRANSCRIPT_FILE} line {entry.seq + 1} ({entry.step}): {message}")


def _get(entry: Entry, *path: str) -> Any:
    value: Any = entry.data
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise _fail(entry, f"{'.'.join(path)} is missing")
        value = value[name]
    return value


def check_key_evidence(ceremony_id: str, generated: Entry, attempts: Entry | None, self_test: Entry | None,
                       key: KeyEntry) -> list[str]:
    """The attribute, extraction and self-test records of one key; returns report lines."""
    problems = evidence.attribute_problems(_get(generated, "attributes"))
    if problems:
        raise _fail(generated, f"key {key.label!r}: {'; '.join(problems)}")
    if _get(generated, "attributes", "id") != key.id:
        raise _fail(generated, f"key {key.label!r}: CKA_ID read back is not the key id {key.id}")
    lines = [f"{key.purpose} key {key.label}: token object, private, sensitive, never extractable, "
             "always sensitive, locally generated, sign-only"]
    if attempts is not None:
        if _get(attempts, "label") != key.label:
            raise _fail(attempts, f"is about {_get(attempts, 'label')!r}, expected {key.label!r}")
        problems = evidence.extraction_problems(attempts.data)
        if problems:
            raise _fail(attempts, f"key {key.label!r}: {'; '.join(problems)}")
        lines.append(f"{key.purpose} key {key.label}: reading CKA_VALUE and wrapping it out were refused")
    if self_test is not None:
        if _get(self_test, "label") != key.label or _get(self_test, "purpose") != key.purpose:
            raise _fail(self_test, f"is about another key than {key.label!r}")
        nonce = _get(self_test, "nonce")
        if not (isinstance(nonce, str) and len(nonce) == 64):
            raise _fail(self_test, "nonce must be 64 hex digits")
        if key.is_signing_key:
            try:
                signature = base64.b64decode(_get(self_test, "signature"), validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise _fail(self_test, "signature is not base64") from None
            try:
                verify_signature(key.public_key_der, evidence.self_test_message(ceremony_id, key.label, nonce), signature)
            except VerificationError:
                raise _fail(self_test, f"the self-test signature of {key.label!r} does not verify with its public key") from None
            lines.append(f"{key.purpose} key {key.label}: self-test signature verifies with the published key")
        else:
            lines.append(f"{key.purpose} key {key.label}: HMAC self-test recorded")
    return lines


def verify_bundle_files(files: dict[str, bytes], where: str = "bundle") -> Report:
    """Verify a ceremony bundle given as ``{file name: bytes}``; see the module docstring."""
    require_files(files, CEREMONY_FILES)
    return guarded(_verify_ceremony, files, where)


def guarded(check: Any, *args: Any) -> Report:
    """Run ``check``; a transcript of unexpected shape is a verification failure, not a crash."""
    try:
        return check(*args)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise FormatError(f"{TRANSCRIPT_FILE} does not have the structure of an hsm-signer transcript "
                          f"({type(exc).__name__}: {exc})") from None


def _verify_ceremony(files: dict[str, bytes], where: str) -> Report:
    raw = files[TRANSCRIPT_FILE]
    entries = parse_transcript(raw)
    head = transcript_head(raw)
    checks = [f"transcript: {len(entries)} entries, hash chain intact, head {head}"]

    opened = entries[0]
    if opened.step != "ceremony-opened":
        raise _fail(opened, "a ceremony transcript starts with ceremony-opened")
    ceremony_id = _get(opened, "ceremony_id")
    config = _get(opened, "config")
    interactive = _get(opened, "interactive")
    if not isinstance(config, dict) or config.get("ceremony_id") != ceremony_id:
        raise _fail(opened, "the recorded configuration is of another ceremony")
    officials = _get(opened, "config", "officials")
    holders = [o["name"] for o in officials if "share-holder" in o.get("roles", [])]
    witnesses = [o["name"] for o in officials if "witness" in o.get("roles", [])]
    planned = _get(opened, "config", "keys")
    expected = (["ceremony-opened", "roll-call", "environment", "preflight", "pin-split"]
                + ["share-handed-over"] * len(holders) + ["user-pin-set", "activation-test"]
                + ["key-generated", "extraction-attempts", "self-test"] * len(planned)
                + ["public-keys-exported"] + ["witness-attestation"] * (len(witnesses) if interactive else 1)
                + ["ceremony-closed"])
    check_steps(entries, expected)
    checks.append(f"script: all {len(expected)} steps of a complete ceremony, in order")

    bundle = load_key_bundle(files[KEYS_FILE])
    if bundle.ceremony_id != ceremony_id:
        raise VerificationError(f"{KEYS_FILE}: ceremony_id is {bundle.ceremony_id!r}, the transcript is of {ceremony_id!r}")
    by_step = {}
    for entry in entries:
        by_step.setdefault(entry.step, []).append(entry)
    generated = by_step["key-generated"]
    if len(bundle.keys) != len(generated):
        raise VerificationError(f"{KEYS_FILE} lists {len(bundle.keys)} keys, the transcript generated {len(generated)}")
    for i, (key, gen, attempts, test, plan) in enumerate(zip(bundle.keys, generated, by_step["extraction-attempts"],
                                                               by_step["self-test"], planned)):
        recorded = _get(gen, "key")
        for name, value in key.to_dict().items():
            if not isinstance(recorded, dict) or recorded.get(name) != value:
                raise VerificationError(
                    f"{KEYS_FILE} keys[{i}].{name} differs from the key recorded at generation "
                    f"({TRANSCRIPT_FILE} line {gen.seq + 1})")
        if recorded != key.to_dict():
            raise _fail(gen, f"records fields that keys.json keys[{i}] does not have")
        if (plan.get("purpose"), plan.get("label"), plan.get("algorithm")) != (key.purpose, key.label, key.algorithm):
            raise _fail(gen, f"key {key.label!r} is not the key planned in the configuration ({plan})")
        if key.is_signing_key and key.note_key_name != f"{ceremony_id}/{key.purpose}":
            raise VerificationError(f"{KEYS_FILE} keys[{i}].note_key_name must be {ceremony_id}/{key.purpose}")
        checks += check_key_evidence(ceremony_id, gen, attempts, test, key)
    exported = by_step["public-keys-exported"][0]
    if _get(exported, "sha256") != hashlib.sha256(files[KEYS_FILE]).hexdigest():
        raise VerificationError(
            f"{KEYS_FILE} is not byte for byte the file exported in the ceremony "
            f"(its SHA-256 differs from {TRANSCRIPT_FILE} line {exported.seq + 1}); it was edited")
    if _get(exported, "created") != bundle.created:
        raise VerificationError(f"{KEYS_FILE}: created differs from the export record")
    checks.append(f"{KEYS_FILE}: exactly the file exported in the ceremony ({len(bundle.keys)} keys)")

    checks.append(_check_pin(by_step, holders, _get(opened, "config", "threshold")))
    checks.append(_check_witnesses(by_step["witness-attestation"], witnesses, interactive))

    signers = [k for k in bundle.keys if k.is_signing_key]
    checks += check_signatures(files[SIGNATURES_FILE], ceremony_id, len(entries), head, signers)

    if files[SUMMARY_FILE] != ceremony_summary(entries, head).encode("utf-8"):
        raise VerificationError(f"{SUMMARY_FILE} does not say what the transcript says; it was edited "
                                "(it must be exactly the summary generated from the transcript)")
    checks.append(f"{SUMMARY_FILE}: matches the transcript")
    notes = []
    if _get(opened, "config", "rehearsal"):
        notes.append("this is a REHEARSAL ceremony: its keys must never be used for a real election")
    if not interactive:
        notes.append("non-interactive: officials and witnesses did not acknowledge on screen")
    return Report("ceremony", ceremony_id, where, tuple(checks), tuple(notes))


def _check_pin(by_step: dict[str, list[Entry]], holders: list[str], threshold: Any) -> str:
    split = by_step["pin-split"][0]
    if _get(split, "threshold") != threshold or _get(split, "shares") != len(holders):
        raise _fail(split, f"the PIN split is not {threshold}-of-{len(holders)} as configured")
    if [h.get("holder") for h in _get(split, "holders")] != holders:
        raise _fail(split, "the share holders are not those of the configuration")
    for index, (entry, holder) in enumerate(zip(by_step["share-handed-over"], holders), 1):
        if (_get(entry, "holder"), _get(entry, "index")) != (holder, index) or entry.actor != holder:
            raise _fail(entry, f"expected share {index} handed to {holder}")
    activation = by_step["activation-test"][0]
    used = _get(activation, "holders")
    if not isinstance(used, list) or len(set(used)) != len(used) or not set(used) <= set(holders) \
            or len(used) < threshold or _get(activation, "shares_used") != len(used):
        raise _fail(activation, f"the activation test must use at least {threshold} distinct share holders' shares")
    return (f"user PIN split {threshold}-of-{len(holders)} (SLIP-39); {len(used)} shares "
            f"({', '.join(used)}) activated the token")


def _check_witnesses(attestations: list[Entry], witnesses: list[str], interactive: Any) -> str:
    if not interactive:
        if _get(attestations[0], "acknowledged") is not False:
            raise _fail(attestations[0], "a non-interactive ceremony cannot have acknowledged witnesses")
        return "witnesses: none asked (non-interactive rehearsal)"
    for entry, witness in zip(attestations, witnesses):
        if entry.actor != witness or _get(entry, "witness") != witness or _get(entry, "acknowledged") is not True:
            raise _fail(entry, f"expected the attestation of witness {witness}")
        if _get(entry, "attested_head") != entry.prev:
            raise _fail(entry, f"{witness} attested head {_get(entry, 'attested_head')}, "
                               f"but the transcript's head at that moment was {entry.prev}")
    return f"witnesses {', '.join(witnesses)} attested the transcript head"
