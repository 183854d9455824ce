"""The hash-chained ceremony transcript (JSON Lines) and the statement its signers sign.

Each line is the RFC 8785 canonical JSON of one entry followed by ``\\n``::

    {"actor":...,"data":{...},"prev":"<64 hex>","seq":N,"step":"...","time":"2025-01-31T09:00:00Z"}

``seq`` counts from 0; ``time`` is UTC to the second and never goes backwards; ``prev`` is the SHA-256 (hex) of the previous line's exact bytes,
newline included, and 64 zeros for the first line. So every byte of the file is covered:
the *head* (SHA-256 of the last line) fixes the whole transcript, and the head is what
each new signing key signs, as a c2sp.org/signed-note whose text is
:func:`head_statement`.

Parsing (:func:`parse_transcript`) is pure and raises :class:`VerificationError` naming
the line and what is wrong. This module must never record a PIN or a share: the runner
passes only public facts, and :meth:`Transcript.append` refuses values that look like
one of the secrets it is told about.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from hsm_signer.canonical import canonicalize, loads_strict
from hsm_signer.errors import FormatError, VerificationError

FIELDS = ("seq", "time", "step", "actor", "data", "prev")
GENESIS = "0" * 64
TRANSCRIPT_FILE = "transcript.jsonl"
STATEMENT_HEADER = "hsm-signer ceremony transcript v1"
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    step: str
    actor: str
    data: dict[str, Any]
    prev: str

    def line(self) -> bytes:
        return canonicalize({name: getattr(self, name) for name in FIELDS}) + b"\n"


class Transcript:
    """An append-only transcript being written during a ceremony (kept in memory)."""

    def __init__(self, clock: Callable[[], str] = utc_now):
        self._clock = clock
        self._lines: list[bytes] = []
        self.entries: list[Entry] = []
        self._forbidden: list[str] = []

    def forbid(self, *secrets: str) -> None:
        """Refuse any later entry containing one of these strings (PINs, shares)."""
        self._forbidden.extend(s for s in secrets if s)

    @property
    def head(self) -> str:
        return line_hash(self._lines[-1]) if self._lines else GENESIS

    def append(self, step: str, actor: str, data: dict[str, Any] | None = None) -> Entry:
        now = self._clock()
        if self.entries and now < self.entries[-1].time:
            now = self.entries[-1].time  # a clock stepped back must not make the transcript invalid
        entry = Entry(seq=len(self._lines), time=now, step=step, actor=actor,
                      data=dict(data or {}), prev=self.head)
        line = entry.line()
        text = line.decode("utf-8")
        if any(secret in text for secret in self._forbidden):
            raise RuntimeError(f"refusing to record step {step!r}: it contains a PIN or share")
        self._lines.append(line)
        self.entries.append(entry)
        return entry

    def to_bytes(self) -> bytes:
        return b"".join(self._lines)

    def find(self, step: str) -> list[Entry]:
        return [e for e in self.entries if e.step == step]


def head_statement(ceremony_id: str, entries: int, head: str) -> str:
    """The note text signed over a transcript head: what it is, whose, how long, which head."""
    return f"{STATEMENT_HEADER}\n{ceremony_id}\n{entries}\n{head}\n"


def parse_transcript(data: bytes, name: str = TRANSCRIPT_FILE) -> list[Entry]:
    """Parse and check a transcript: canonical lines, consecutive seq, unbroken hash chain."""
    if not data:
        raise FormatError(f"{name} is empty")
    if not data.endswith(b"\n"):
        raise FormatError(f"{name} does not end with a newline: its last line is cut or was changed")
    entries: list[Entry] = []
    prev = GENESIS
    for number, raw in enumerate(data[:-1].split(b"\n"), 1):
        where = f"{name} line {number}"
        line = raw + b"\n"
        try:
            obj = loads_strict(raw)
        except FormatError as exc:
            raise FormatError(f"{where} is not valid JSON ({exc}); the line was changed") from None
        if not isinstance(obj, dict) or sorted(obj) != sorted(FIELDS):
            got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise FormatError(f"{where} must have exactly the fields {', '.join(FIELDS)}; got {got}")
        try:
            canonical = canonicalize(obj) + b"\n"
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from None
        if canonical != line:
            raise FormatError(f"{where} is not in canonical JSON form (RFC 8785); the line was changed")
        _check_types(obj, where)
        if not TIME_RE.fullmatch(obj["time"]):
            raise FormatError(f"{where}: time {obj['time']!r} is not UTC in the form 2025-01-31T09:00:00Z")
        if entries and obj["time"] < entries[-1].time:
            raise VerificationError(f"{where}: time {obj['time']} is before the previous entry's {entries[-1].time}")
        if obj["seq"] != number - 1:
            raise VerificationError(
                f"{where} has seq {obj['seq']}, expected {number - 1}: entries were removed, added or reordered")
        if obj["prev"] != prev:
            what = "64 zeros (it is the first line)" if number == 1 else f"the SHA-256 of line {number - 1}"
            raise VerificationError(
                f"{where} (seq {number - 1}, step {obj['step']!r}): prev does not match {what}; "
                + ("the first line was changed" if number == 1 else f"line {number - 1} was changed, removed or inserted"))
        entries.append(Entry(**{name_: obj[name_] for name_ in FIELDS}))
        prev = line_hash(line)
    return entries


def head_groups(head: str) -> str:
    """A transcript head as witnesses copy it: 16 groups of 4 hex digits, in two lines of 8."""
    groups = [head[i:i + 4] for i in range(0, len(head), 4)]
    return " ".join(groups[:8]) + "\n" + " ".join(groups[8:])


def transcript_head(data: bytes) -> str:
    """SHA-256 of the last line (call after :func:`parse_transcript` accepted ``data``)."""
    return line_hash(data[:-1].rsplit(b"\n", 1)[-1] + b"\n")


def _check_types(obj: dict[str, Any], where: str) -> None:
    kinds: Iterable[tuple[str, type]] = (("seq", int), ("time", str), ("step", str), ("actor", str),
                                         ("data", dict), ("prev", str))
    for field_name, kind in kinds:
        value = obj[field_name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise FormatError(f"{where}: {field_name} must be {kind.__name__}, got {type(value).__name__}")
