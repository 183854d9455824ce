"""The checks that ceremony and retirement bundles share, for :mod:`.verify_ceremony` and :mod:`.verify_retirement`.

Reading a bundle directory, the exact file set, ``keys.json`` parsed strictly, the script of
steps, one key's generation evidence, and failures that name the transcript line. Never
PKCS#11: auditors run these without an HSM.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from cryptography.exceptions import UnsupportedAlgorithm

from hsm_signer.bundle import KEYS_FILE, KeyBundle, KeyEntry
from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.signer import verify_signature

from . import evidence
from .transcript import TRANSCRIPT_FILE, Entry, head_groups


@dataclass(frozen=True)
class Report:
    """What a successful verification checked, for printing."""

    kind: str
    ceremony_id: str
    directory: str
    checks: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())
    head: str | None = None  # the transcript head witnesses wrote down at the close


    def text(self) -> str:
        lines = [f"{self.kind} bundle {self.ceremony_id} ({self.directory})"]
        lines += [f"  OK   {c}" for c in self.checks]
        lines += [f"  NOTE {n}" for n in self.notes]
        if self.head is not None:
            lines.append("Transcript head (witnesses: compare with the head you wrote down at the close):")
            lines += [f"  {line}" for line in head_groups(self.head).splitlines()]
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


def failure(entry: Entry, message: str) -> VerificationError:
    """A failure at one transcript line, naming its step (raise it)."""
    return VerificationError(f"{TRANSCRIPT_FILE} line {entry.seq + 1} ({entry.step}): {message}")


def value_of(entry: Entry, *path: str) -> Any:
    """The value at ``path`` in an entry's data; a missing one fails at that line."""
    value: Any = entry.data
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise failure(entry, f"{'.'.join(path)} is missing")
        value = value[name]
    return value


def check_key_evidence(ceremony_id: str, generated: Entry, attempts: Entry | None, self_test: Entry | None,
                       key: KeyEntry) -> list[str]:
    """The attribute, extraction and self-test records of one key; returns report lines."""
    expected = evidence.SEALING_EXPECTED_ATTRIBUTES if key.is_sealing_key else evidence.EXPECTED_ATTRIBUTES
    problems = evidence.attribute_problems(value_of(generated, "attributes"), expected)
    if problems:
        raise failure(generated, f"key {key.label!r}: {'; '.join(problems)}")
    if value_of(generated, "attributes", "id") != key.id:
        raise failure(generated, f"key {key.label!r}: CKA_ID read back is not the key id {key.id}")
    use = "deriving secrets" if key.is_sealing_key else "signing"
    lines = [f"{key.purpose} key {key.label}: made inside the HSM and kept there, secret from the first moment, "
             f"can never be exported, used only for {use} (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, "
             f"CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_LOCAL true; CKA_EXTRACTABLE false; "
             f"{'CKA_DERIVE' if key.is_sealing_key else 'CKA_SIGN'} only)"]
    if attempts is not None:
        if value_of(attempts, "label") != key.label:
            raise failure(attempts, f"is about {value_of(attempts, 'label')!r}, expected {key.label!r}")
        problems = evidence.extraction_problems(attempts.data)
        if problems:
            raise failure(attempts, f"key {key.label!r}: {'; '.join(problems)}")
        lines.append(f"{key.purpose} key {key.label}: the HSM refused to show the secret key and refused to export "
                     "it wrapped under another key (reading CKA_VALUE, C_WrapKey)")
    if self_test is not None:
        if value_of(self_test, "label") != key.label or value_of(self_test, "purpose") != key.purpose:
            raise failure(self_test, f"is about another key than {key.label!r}")
        if key.is_sealing_key:
            problems = evidence.derive_self_test_problems(self_test.data, key.sealing_point)
            if problems:
                raise failure(self_test, f"sealing key {key.label!r}: {'; '.join(problems)}")
            lines.append(f"{key.purpose} key {key.label}: the recorded derive self-test recomputes with the published key")
            return lines
        nonce = value_of(self_test, "nonce")
        if not (isinstance(nonce, str) and len(nonce) == 64):
            raise failure(self_test, "nonce must be 64 hex digits")
        if key.is_signing_key:
            try:
                signature = base64.b64decode(value_of(self_test, "signature"), validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise failure(self_test, "signature is not base64") from None
            try:
                verify_signature(key.public_key_der, evidence.self_test_message(ceremony_id, key.label, nonce), signature)
            except VerificationError:
                raise failure(self_test, f"the self-test signature of {key.label!r} does not verify with its public key") from None
            lines.append(f"{key.purpose} key {key.label}: self-test signature verifies with the published key")
        else:
            lines.append(f"{key.purpose} key {key.label}: HMAC self-test recorded")
    return lines


def guarded(check: Any, *args: Any) -> Report:
    """Run ``check``; a transcript of unexpected shape is a verification failure, not a crash."""
    try:
        return check(*args)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise FormatError(f"{TRANSCRIPT_FILE} does not have the structure of an hsm-signer transcript "
                          f"({type(exc).__name__}: {exc})") from None
