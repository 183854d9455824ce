"""Openings: what the tally publishes for every sealed ballot, and how anyone re-checks one.

The openings file (``openings.jsonl`` in the election record) has one line per log entry, in
log order: the RFC 8785 canonical JSON of

    {"index": i, "ballot_id": "<32 hex>", "shared_secret": "<base64>", "status": "valid",
     "selections": {"<contest>": ["<option>", ...]}}
    {"index": i, "ballot_id": "<32 hex>", "shared_secret": "<base64>", "status": "invalid",
     "reason": "<why it does not count>"}

then one newline. ``shared_secret`` is the HPKE KEM shared secret of the entry's sealed
ballot (RFC 9180 DHKEM, computed from the HSM's ECDH): with it anyone re-runs the
decryption (:func:`judge`) and gets the same status and selections, without the sealing
key. An entry whose encapsulated key is not a P-256 point has no secret (empty string).
The signed tally binds ``sha256`` of the whole file (:func:`openings_digest`).

A ballot is ``invalid`` (counted like a spoiled paper ballot, never dropped) when it does
not open with its secret, its plaintext is not exactly the padded canonical JSON the
format prescribes, or its selections do not fit the election's contests.

Pure: no I/O, no storage, no PKCS#11. The tally and the audit judge with the same code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from .canonical import canonicalize, exact_object, loads_strict
from .election import BallotError, Election
from .errors import FormatError, VerificationError
from .log import hpke
from .log.leaf import BALLOT_ID_PATTERN, SealedLeaf
from .log.sealed import open_sealed

VALID, INVALID = "valid", "invalid"
VALID_FIELDS = ("index", "ballot_id", "shared_secret", "status", "selections")
INVALID_FIELDS = ("index", "ballot_id", "shared_secret", "status", "reason")
DIGEST_PREFIX = "sha256:"
NO_POINT = "the encapsulated key is not a point on P-256"


@dataclass(frozen=True)
class Opening:
    """The opening of log entry ``index``: its secret and what it opened to."""

    index: int
    ballot_id: str
    shared_secret: bytes
    status: str
    selections: dict[str, list[str]] | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "ballot_id": self.ballot_id,
                               "shared_secret": base64.b64encode(self.shared_secret).decode("ascii"),
                               "status": self.status}
        if self.status == VALID:
            out["selections"] = self.selections
        else:
            out["reason"] = self.reason
        return out

    def to_line(self) -> bytes:
        """The exact bytes of this opening's line in the openings file (with its newline)."""
        return canonicalize(self.to_dict()) + b"\n"

    @classmethod
    def from_line(cls, line: bytes, where: str = "opening") -> "Opening":
        """Parse one line (without or with its newline) strictly: canonical, exact fields."""
        body = line[:-1] if line.endswith(b"\n") else line
        try:
            obj = loads_strict(body)
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}", "opening.syntax") from None
        if not isinstance(obj, dict):
            raise FormatError(f"{where}: an opening is a JSON object", "opening.syntax")
        status = obj.get("status")
        if status not in (VALID, INVALID):
            raise FormatError(f"{where}: status must be 'valid' or 'invalid', got {status!r}", "opening.syntax")
        try:
            exact_object(obj, VALID_FIELDS if status == VALID else INVALID_FIELDS, where)
        except FormatError as exc:
            raise FormatError(str(exc), "opening.syntax") from None
        index, ballot_id, secret = obj["index"], obj["ballot_id"], obj["shared_secret"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise FormatError(f"{where}: index must be a non-negative integer", "opening.syntax")
        if not isinstance(ballot_id, str) or not BALLOT_ID_PATTERN.fullmatch(ballot_id):
            raise FormatError(f"{where}: ballot_id must be 32 lowercase hex digits", "opening.syntax")
        try:
            raw = base64.b64decode(secret, validate=True) if isinstance(secret, str) else None
        except binascii.Error:
            raw = None
        if raw is None or len(raw) not in (0, hpke.N_SECRET):
            raise FormatError(f"{where}: shared_secret must be the base64 of {hpke.N_SECRET} bytes", "opening.syntax")
        selections = obj.get("selections")
        reason = obj.get("reason")
        if status == VALID and not (isinstance(selections, dict) and all(
                isinstance(v, list) and all(isinstance(o, str) for o in v) for v in selections.values())):
            raise FormatError(f"{where}: selections must map each contest to a list of option ids", "opening.syntax")
        if status == INVALID and not (isinstance(reason, str) and reason):
            raise FormatError(f"{where}: reason must be a non-empty string", "opening.syntax")
        opening = cls(index, ballot_id, raw, status, selections, reason)
        if opening.to_line()[:-1] != body:
            raise FormatError(f"{where}: not in canonical JSON form (RFC 8785)", "opening.syntax")
        return opening


def judge(leaf: SealedLeaf, shared_secret: bytes, election: Election, size: int, index: int) -> Opening:
    """Open ``leaf`` with ``shared_secret`` and judge it by the election's rules.

    ``size`` is the election's padded plaintext size. Never raises for a bad ballot: it
    is an ``invalid`` opening with the reason.
    """
    def invalid(reason: str) -> Opening:
        return Opening(index, leaf.ballot_id, shared_secret, INVALID, reason=reason)

    if not shared_secret:
        return invalid(NO_POINT)
    try:
        selections = open_sealed(shared_secret, leaf.election, leaf.channel, leaf.ballot_id, leaf.sealed, size)
    except hpke.OpeningError:
        return invalid("the sealed ballot does not open with its secret (authentication tag mismatch)")
    except FormatError as exc:
        return invalid(f"the opened ballot is malformed: {exc}")
    try:
        clean = election.validate_selections(selections)
    except BallotError as exc:
        return invalid(f"the selections do not fit the election: {exc}")
    if clean != selections:
        return invalid("the selections are not in the election's canonical form")
    return Opening(index, leaf.ballot_id, shared_secret, VALID, selections=clean)


def check_opening(opening: Opening, leaf: SealedLeaf, election: Election, size: int, index: int) -> None:
    """Re-run ``opening`` against its entry: VerificationError naming what does not match."""
    where = f"opening {index}"
    if opening.index != index:
        raise VerificationError(f"{where}: says index {opening.index}; openings are in log order, one per entry",
                                "opening.index")
    if opening.ballot_id != leaf.ballot_id:
        raise VerificationError(f"{where}: is for ballot {opening.ballot_id}, but entry {index} is ballot "
                                f"{leaf.ballot_id}: an opening was moved to another entry", "opening.ballot-id")
    if not opening.shared_secret:
        try:
            hpke.split_sealed(leaf.sealed)
        except FormatError:
            pass
        else:
            raise VerificationError(f"{where}: gives no secret, but entry {index}'s encapsulated key is a valid "
                                    "point", "opening.no-secret")
    again = judge(leaf, opening.shared_secret, election, size, index)
    if again.status != opening.status:
        if opening.status == VALID:
            raise VerificationError(f"{where}: counted as valid, but re-opening entry {index} with its secret gives "
                                    f"an invalid ballot ({again.reason})", "opening.not-valid")
        raise VerificationError(f"{where}: counted as invalid, but entry {index} opens with its secret to a valid "
                                "ballot", "opening.not-invalid")
    if opening.status == VALID and opening.selections != again.selections:
        raise VerificationError(f"{where}: the published selections are not what entry {index} opens to",
                                "opening.selections")
    if opening.status == INVALID and opening.reason != again.reason:
        raise VerificationError(f"{where}: the published reason is not what re-opening entry {index} gives "
                                f"({again.reason})", "opening.reason")


def openings_digest(data: bytes) -> str:
    """``sha256:<hex>`` of the whole openings file: what the signed tally binds."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
