"""The signed tally format: the counts as data, their extension lines, reading them back.

The tally is a checkpoint of the *final* tree (same origin, size and root as the final
checkpoint of the closed poll) whose extension lines carry the counts, so the signature
binds the numbers to the exact list of entries they were counted from. The line format
(docs/FORMATS.md, "The signed tally in full") is produced and parsed only here:

    definition sha256:<hex>                           the election definition counted against
    tally <contest> <option> <count>                  every option, definition order, zeros included
    blank <contest> <count>                           ballots selecting nothing in that contest
    tally-channel <channel> <contest> <option> <count>  the same counts for online, then postal
    ballots <channel> <count>                         ballots per channel (they sum to the tree size)
    invalid <channel> <count>                         sealed elections: ballots that did not open to a
                                                      valid vote (counted, like spoiled paper ballots)
    openings sha256:<hex>                             sealed elections: the digest of the openings file

Pure and offline: counting is :mod:`hsm_signer.recount`, signing is
:func:`hsm_signer.lifecycle.tally_election`. This module must never import PKCS#11,
Flask or storage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .bundle import TALLY, KeyBundle
from .canonical import canonicalize
from .election import Election
from .errors import FormatError, VerificationError
from .log.checkpoint import Checkpoint, election_of_origin
from .log.leaf import BALLOT, POSTAL, check_id
from .log.note import b64encode, open_note

ONLINE_CHANNEL, POSTAL_CHANNEL = "online", "postal"
CHANNELS = (ONLINE_CHANNEL, POSTAL_CHANNEL)
CHANNEL_OF_LEAF_TYPE = {BALLOT: ONLINE_CHANNEL, POSTAL: POSTAL_CHANNEL}
DEFINITION_PREFIX = "sha256:"
_COUNT = re.compile(r"0|[1-9][0-9]*")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def definition_digest(election: Election) -> str:
    """``sha256:<hex>`` of the RFC 8785 canonical JSON of the election definition.

    Binds the titles and the contest rules, not only the ids, to the signed tally.
    """
    return DEFINITION_PREFIX + hashlib.sha256(canonicalize(election.to_dict())).hexdigest()


# --- the tally as data ----------------------------------------------------------------------

@dataclass(frozen=True)
class OptionCount:
    id: str
    online: int
    postal: int

    @property
    def total(self) -> int:
        return self.online + self.postal

    def by_channel(self, channel: str) -> int:
        return self.online if channel == ONLINE_CHANNEL else self.postal


@dataclass(frozen=True)
class ContestCount:
    id: str
    options: tuple[OptionCount, ...]
    blank: int


@dataclass(frozen=True)
class Tally:
    """The counts of one election's final tree, and the tree they were counted from."""

    election: str
    origin: str  # the log's checkpoint origin, <origin prefix>/<election>
    size: int
    root_hash: bytes
    definition: str
    contests: tuple[ContestCount, ...]
    ballots_online: int
    ballots_postal: int
    invalid_online: int = 0
    invalid_postal: int = 0
    openings: str | None = None  # sealed elections: sha256:<hex> of the openings file

    @property
    def invalid(self) -> int:
        return self.invalid_online + self.invalid_postal

    def extension_lines(self) -> tuple[str, ...]:
        """The checkpoint extension lines, in the one documented order."""
        lines = [f"definition {self.definition}"]
        lines += [f"tally {c.id} {o.id} {o.total}" for c in self.contests for o in c.options]
        lines += [f"blank {c.id} {c.blank}" for c in self.contests]
        for channel in CHANNELS:
            lines += [f"tally-channel {channel} {c.id} {o.id} {o.by_channel(channel)}"
                      for c in self.contests for o in c.options]
        lines += [f"ballots {ONLINE_CHANNEL} {self.ballots_online}", f"ballots {POSTAL_CHANNEL} {self.ballots_postal}"]
        if self.openings is not None:
            lines += [f"invalid {ONLINE_CHANNEL} {self.invalid_online}", f"invalid {POSTAL_CHANNEL} {self.invalid_postal}",
                      f"openings {self.openings}"]
        return tuple(lines)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.origin, self.size, self.root_hash, self.extension_lines())

    def to_dict(self) -> dict:
        """A JSON-friendly summary (what the bulletin board and ``tally --json`` show)."""
        return {
            "election": self.election,
            "tree_size": self.size,
            "root_hash": b64encode(self.root_hash),
            "definition": self.definition,
            "ballots": {ONLINE_CHANNEL: self.ballots_online, POSTAL_CHANNEL: self.ballots_postal, "total": self.size},
            **({"invalid": {ONLINE_CHANNEL: self.invalid_online, POSTAL_CHANNEL: self.invalid_postal,
                            "total": self.invalid}, "openings": self.openings} if self.openings is not None else {}),
            "contests": [
                {"id": c.id, "blank": c.blank,
                 "options": [{"id": o.id, "votes": o.total, ONLINE_CHANNEL: o.online, POSTAL_CHANNEL: o.postal}
                             for o in c.options]}
                for c in self.contests
            ],
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> "Tally":
        """Parse a tally checkpoint's extension lines strictly (format above).

        Raises FormatError naming the line (``tally line 5``, counted among the extension
        lines) for anything malformed, missing, repeated, out of order or inconsistent.
        """
        try:
            election = election_of_origin(checkpoint.origin)
        except FormatError as exc:
            raise exc.within("tally") from None
        lines = checkpoint.extensions
        if not lines:
            raise FormatError("the checkpoint has no extension lines: it is not a tally")
        definition = None
        totals: dict[tuple[str, str], int] = {}
        order: dict[str, list[str]] = {}
        blank: dict[str, int] = {}
        per_channel: dict[tuple[str, str, str], int] = {}
        ballots: dict[str, int] = {}
        invalid: dict[str, int] = {}
        openings = None

        def count(value: str, where: str) -> int:
            if not _COUNT.fullmatch(value):
                raise FormatError(f"{where}: count {value!r} is not a decimal number without leading zeros")
            return int(value)

        for number, line in enumerate(lines, 1):
            where = f"tally line {number} ({line!r})"
            fields = line.split(" ")
            kind = fields[0]
            shape = {"definition": 2, "tally": 4, "blank": 3, "tally-channel": 5, "ballots": 3, "invalid": 3,
                     "openings": 2}.get(kind)
            if shape is None:
                raise FormatError(f"{where}: unknown line kind {kind!r}")
            if len(fields) != shape:
                raise FormatError(f"{where}: a {kind} line has {shape - 1} field(s) after the kind, separated by single spaces")
            if kind == "definition":
                digest = fields[1]
                if definition is not None:
                    raise FormatError(f"{where}: repeats the definition line")
                if not digest.startswith(DEFINITION_PREFIX) or not _HEX64.fullmatch(digest[len(DEFINITION_PREFIX):]):
                    raise FormatError(f"{where}: the definition is sha256:<64 lowercase hex digits>")
                definition = digest
                continue
            if kind == "openings":
                digest = fields[1]
                if openings is not None:
                    raise FormatError(f"{where}: repeats the openings line")
                if not digest.startswith(DEFINITION_PREFIX) or not _HEX64.fullmatch(digest[len(DEFINITION_PREFIX):]):
                    raise FormatError(f"{where}: the openings digest is sha256:<64 lowercase hex digits>")
                openings = digest
                continue
            if kind in ("tally-channel", "ballots", "invalid") and fields[1] not in CHANNELS:
                raise FormatError(f"{where}: unknown channel {fields[1]!r}; channels are {', '.join(CHANNELS)}")
            for i, ident in enumerate(fields[1:-1], 1):
                if kind in ("ballots", "invalid") or (kind == "tally-channel" and i == 1):
                    continue
                try:
                    check_id(ident, "contest or option id")
                except FormatError as exc:
                    raise FormatError(f"{where}: {exc}") from None
            value = count(fields[-1], where)
            if kind == "tally":
                key = (fields[1], fields[2])
                if key in totals:
                    raise FormatError(f"{where}: repeats contest {key[0]} option {key[1]}")
                totals[key] = value
                order.setdefault(fields[1], []).append(fields[2])
            elif kind == "blank":
                if fields[1] in blank:
                    raise FormatError(f"{where}: repeats the blank count of contest {fields[1]}")
                blank[fields[1]] = value
            elif kind == "tally-channel":
                key3 = (fields[1], fields[2], fields[3])
                if key3 in per_channel:
                    raise FormatError(f"{where}: repeats channel {key3[0]} contest {key3[1]} option {key3[2]}")
                per_channel[key3] = value
            elif kind == "invalid":
                if fields[1] in invalid:
                    raise FormatError(f"{where}: repeats the invalid count of channel {fields[1]}")
                invalid[fields[1]] = value
            else:
                if fields[1] in ballots:
                    raise FormatError(f"{where}: repeats the ballot count of channel {fields[1]}")
                ballots[fields[1]] = value

        if definition is None:
            raise FormatError("the tally has no 'definition sha256:<hex>' line")
        if not totals:
            raise FormatError("the tally has no 'tally <contest> <option> <count>' line")
        for channel in CHANNELS:
            if channel not in ballots:
                raise FormatError(f"the tally has no 'ballots {channel} <count>' line")
        contests = []
        for contest_id, option_ids in order.items():
            if contest_id not in blank:
                raise FormatError(f"the tally has no 'blank {contest_id} <count>' line")
            options = []
            for option_id in option_ids:
                channel_counts = []
                for channel in CHANNELS:
                    if (channel, contest_id, option_id) not in per_channel:
                        raise FormatError(f"the tally has no 'tally-channel {channel} {contest_id} {option_id} <count>' line")
                    channel_counts.append(per_channel[(channel, contest_id, option_id)])
                option = OptionCount(option_id, *channel_counts)
                if option.total != totals[(contest_id, option_id)]:
                    raise FormatError(
                        f"'tally {contest_id} {option_id} {totals[(contest_id, option_id)]}' is not the sum of its "
                        f"channel counts (online {option.online} + postal {option.postal})")
                if option.total > checkpoint.size - blank[contest_id]:
                    raise FormatError(
                        f"'tally {contest_id} {option_id} {option.total}' exceeds the {checkpoint.size - blank[contest_id]} "
                        f"non-blank ballots of contest {contest_id}")
                options.append(option)
            contests.append(ContestCount(contest_id, tuple(options), blank[contest_id]))
        if (openings is None) != (not invalid):
            raise FormatError("a sealed election's tally has both 'invalid <channel> <count>' lines and an "
                              "'openings sha256:<hex>' line; an earlier election's has neither")
        for channel in CHANNELS if openings is not None else ():
            if channel not in invalid:
                raise FormatError(f"the tally has no 'invalid {channel} <count>' line")
            if invalid[channel] > ballots[channel]:
                raise FormatError(f"'invalid {channel} {invalid[channel]}' exceeds the {ballots[channel]} {channel} ballots")
        tally = cls(election=election, origin=checkpoint.origin, size=checkpoint.size, root_hash=checkpoint.root_hash,
                    definition=definition, contests=tuple(contests), ballots_online=ballots[ONLINE_CHANNEL],
                    ballots_postal=ballots[POSTAL_CHANNEL], invalid_online=invalid.get(ONLINE_CHANNEL, 0),
                    invalid_postal=invalid.get(POSTAL_CHANNEL, 0), openings=openings)
        if tally.ballots_online + tally.ballots_postal != checkpoint.size:
            raise FormatError(
                f"the ballot counts (online {tally.ballots_online} + postal {tally.ballots_postal}) do not add up to "
                f"the tree size {checkpoint.size}")
        extra = [" ".join(key) for key in per_channel if (key[1], key[2]) not in totals]
        extra += [contest for contest in blank if contest not in order]
        if extra:
            raise FormatError(f"the tally counts {extra[0]!r}, which has no 'tally <contest> <option>' line")
        # Every line is known, present once and consistent; now the order must be the canonical one.
        for number, (got, want) in enumerate(zip(lines, tally.extension_lines()), 1):
            if got != want:
                raise FormatError(f"tally line {number} is {got!r}, but in the documented order it must be {want!r}")
        return tally


# --- reading a signed tally -------------------------------------------------------------------

def open_tally(note: str | bytes, bundle: KeyBundle) -> tuple[Tally, str]:
    """Verify a signed tally with the bundle's tally key and parse it; return it and the key name."""
    verifier = bundle.verifier(TALLY)
    try:
        text, _ = open_note(note, [verifier])
    except VerificationError as exc:
        raise type(exc)(f"the tally is not signed by the tally key {verifier.name} "
                        f"(key ID {verifier.key_id.hex()}): {exc}") from None
    return Tally.from_checkpoint(Checkpoint.from_text(text)), verifier.name


def tally_summary(note: str | bytes, bundle: KeyBundle, election: Election | None = None) -> dict:
    """The signed tally as JSON-ready data for the bulletin board; raises if it does not verify.

    With ``election``, also checks that the tally is for that definition and adds titles.
    The signed note itself is included (``signed_tally``) for download and offline checks.
    """
    tally, key_name = open_tally(note, bundle)
    summary = tally.to_dict()
    if election is not None:
        if tally.election != election.id or tally.definition != definition_digest(election):
            raise VerificationError(f"the signed tally is for election {tally.election!r} with definition "
                                    f"{tally.definition}, not for {election.id!r} ({definition_digest(election)})")
        summary["title"] = election.title
        for contest, entry in zip(election.contests, summary["contests"]):
            entry["title"] = contest.title
            for option, item in zip(contest.options, entry["options"]):
                item["title"] = option.title
    summary["key_name"] = key_name
    summary["signed_tally"] = note if isinstance(note, str) else bytes(note).decode("utf-8")
    return summary


def format_tally(tally: Tally, election: Election | None = None) -> list[str]:
    """Human-readable result lines: each option with online, postal and total; ballots per channel."""
    titles: Mapping[str, str] = {}
    if election is not None:
        titles = {c.id: c.title for c in election.contests}
        titles |= {f"{c.id}/{o.id}": o.title for c in election.contests for o in c.options}
    width = max([len(o.id) for c in tally.contests for o in c.options] + [len("blank")])
    lines = [f"ballots: {tally.size} (online {tally.ballots_online}, postal {tally.ballots_postal})"]
    if tally.openings is not None:
        lines.append(f"invalid: {tally.invalid} (online {tally.invalid_online}, postal {tally.invalid_postal}); "
                     f"openings {tally.openings}")
    for contest in tally.contests:
        title = titles.get(contest.id)
        lines.append(f"{contest.id}" + (f" ({title})" if title else "") + ":")
        for option in contest.options:
            title = titles.get(f"{contest.id}/{option.id}")
            lines.append(f"  {option.id:<{width}} {option.total:>9}   (online {option.online}, postal {option.postal})"
                         + (f"  {title}" if title else ""))
        lines.append(f"  {'blank':<{width}} {contest.blank:>9}")
    return lines


__all__ = [
    "CHANNELS", "CHANNEL_OF_LEAF_TYPE", "ContestCount", "OptionCount", "Tally", "definition_digest", "format_tally",
    "open_tally", "tally_summary",
]
