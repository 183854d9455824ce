"""c2sp.org/tlog-checkpoint: the signed statement "log <origin> has <size> leaves with root <hash>".

A checkpoint's text is the origin line, the decimal tree size, the base64 root hash, and
optional non-empty extension lines, each ending in a newline; it is wrapped as a signed
note (:mod:`hsm_signer.log.note`). The signed tally is a checkpoint of the final tree
whose extension lines are ``tally <contest> <option> <count>``.

Parsing is strict (no leading zeros, canonical base64 of exactly 32 bytes, no empty
lines). This module only formats and parses; it must never decide *whether* a
checkpoint may be signed (that is the sequencer's job: a log never signs two
inconsistent checkpoints).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import FormatError
from ..signer import Signer
from .leaf import check_id
from .merkle import HASH_SIZE
from .note import NoteVerifier, b64decode_strict, b64encode, open_note, sign_note

LEGACY_ORIGIN_PREFIX = "hsm-signer"
"""The origin prefix of every log before origins were configured: records and receipts from
then (``hsm-signer/<election>``) still verify, but it is the same in every deployment, so no
new election gets it."""
MAX_ORIGIN = 255
_ORIGIN_PREFIX = re.compile(r"[A-Za-z0-9._~-]+(?:/[A-Za-z0-9._~-]+)*")
_SIZE = re.compile(r"0|[1-9][0-9]*")
MAX_SIZE = 2**63 - 1


def check_origin_prefix(prefix: object, what: str = "origin prefix") -> str:
    """A log origin prefix: a schema-less URL such as ``vote.example.org`` or ``vote.example.org/party``.

    Path segments of letters, digits and ``. _ ~ -`` joined by ``/``: no scheme, no space, no
    ``+`` (c2sp.org/tlog-checkpoint), no empty segment. Globally unique is the deployment's
    promise: use a domain name you control.
    """
    if not isinstance(prefix, str) or not _ORIGIN_PREFIX.fullmatch(prefix) or len(prefix) > MAX_ORIGIN - 65:
        raise FormatError(
            f"{what} must be a schema-less URL such as vote.example.org (letters, digits, '.', '_', '~', '-' "
            f"and '/' between them, at most {MAX_ORIGIN - 65} characters), got {prefix!r}", "checkpoint.origin")
    return prefix


def origin_for(prefix: str, election_id: str) -> str:
    """The checkpoint origin of an election's log: ``<prefix>/<election id>``."""
    return f"{check_origin_prefix(prefix)}/{check_id(election_id, 'election id')}"


def legacy_origin(election_id: str) -> str:
    """``hsm-signer/<election id>``: the origin of the logs of elections defined without one."""
    return origin_for(LEGACY_ORIGIN_PREFIX, election_id)


def election_of_origin(origin: object) -> str:
    """The election an origin names (its last segment), if the origin is ``<prefix>/<election id>``."""
    if isinstance(origin, str) and "/" in origin:
        prefix, election = origin.rsplit("/", 1)
        try:
            check_origin_prefix(prefix)
            return check_id(election, "election id")
        except FormatError:
            pass
    raise FormatError(f"log origin {origin!r} is not <origin prefix>/<election id>", "checkpoint.origin")


def check_origin(origin: object, election_id: str) -> str:
    """``origin`` if it is ``<prefix>/<election_id>``, else FormatError."""
    if election_of_origin(origin) != election_id:
        raise FormatError(f"log origin {origin!r} does not name election {election_id!r} "
                          f"(an origin is <origin prefix>/<election id>)", "checkpoint.origin")
    return str(origin)


def _check_line(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise FormatError(f"{what} must be a non-empty string, got {value!r}", "checkpoint.syntax")
    bad = next((ch for ch in value if ord(ch) < 0x20 or "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        raise FormatError(f"{what} must not contain U+{ord(bad):04X} (newlines and control characters are not allowed)", "checkpoint.syntax")
    return value


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root hash, and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "checkpoint origin")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 0 <= self.size <= MAX_SIZE:
            raise FormatError(f"checkpoint size must be an integer in [0, 2**63), got {self.size!r}", "checkpoint.syntax")
        if not isinstance(self.root_hash, (bytes, bytearray)) or len(self.root_hash) != HASH_SIZE:
            raise FormatError(f"checkpoint root hash must be {HASH_SIZE} bytes", "checkpoint.syntax")
        if isinstance(self.extensions, (str, bytes)) or not isinstance(self.extensions, Iterable):
            raise FormatError("checkpoint extensions must be a sequence of lines", "checkpoint.syntax")
        object.__setattr__(self, "root_hash", bytes(self.root_hash))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for i, line in enumerate(self.extensions):
            _check_line(line, f"checkpoint extension line {i + 1}")

    def to_text(self) -> str:
        """The note text: every line, including the last, ends with a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> "Checkpoint":
        """Parse checkpoint note text strictly."""
        if not isinstance(text, str):
            raise FormatError(f"checkpoint text must be a string, got {type(text).__name__}", "checkpoint.syntax")
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline", "checkpoint.syntax")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError(f"checkpoint text has {len(lines)} line(s); it needs origin, size and root hash", "checkpoint.syntax")
        for number, line in enumerate(lines, 1):
            if not line:
                raise FormatError(f"checkpoint line {number} is empty; checkpoint lines must be non-empty", "checkpoint.syntax")
        origin, size, root = lines[:3]
        if not _SIZE.fullmatch(size):
            raise FormatError("checkpoint line 2 (tree size) must be a decimal number without leading zeros, "
                              f"got {size[:40]!r}", "checkpoint.syntax")
        if len(size) > len(str(MAX_SIZE)) or int(size) > MAX_SIZE:  # length first: int() of 5,000 digits raises
            raise FormatError(f"checkpoint tree size {size[:40]} is too large (at most {MAX_SIZE})", "checkpoint.syntax")
        root_hash = b64decode_strict(root, "checkpoint line 3 (root hash)")
        if len(root_hash) != HASH_SIZE:
            raise FormatError(f"checkpoint line 3 (root hash) must decode to {HASH_SIZE} bytes, got {len(root_hash)}", "checkpoint.syntax")
        return cls(origin=origin, size=int(size), root_hash=root_hash, extensions=tuple(lines[3:]))


def sign_checkpoint(checkpoint: Checkpoint, name: str, signer: Signer) -> str:
    """The checkpoint as a signed note, signed by ``signer`` under key name ``name``."""
    return sign_note(checkpoint.to_text(), name, signer)


def open_checkpoint(note: str | bytes, verifiers: Iterable[NoteVerifier]) -> Checkpoint:
    """Verify a signed checkpoint against trusted verifiers, then parse it."""
    text, _ = open_note(note, verifiers)
    return Checkpoint.from_text(text)
