"""Counting a log: every leaf checked strictly, the counts and the root of the tree they make.

Shared by the official's tally (:func:`hsm_signer.lifecycle.tally_election`, over the
database) and the offline audit (:mod:`hsm_signer.audit`, over a record's
``entries.jsonl``), so the count and the auditor's recount are the same code path over
different inputs. Pure: no storage, no PKCS#11, no Flask.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Iterable

from .election import BallotError, Election
from .errors import FormatError, VerificationError
from .log.leaf import LEAF_VERSION, SEALED_LEAF_VERSION, Leaf, SealedLeaf
from .log.sealed import padded_size
from .openings import VALID, Opening, check_opening
from .log.merkle import leaf_hash
from .tally import (
    CHANNEL_OF_LEAF_TYPE,
    ONLINE_CHANNEL,
    POSTAL_CHANNEL,
    ContestCount,
    OptionCount,
    Tally,
    definition_digest,
)
from .log.tree import CompactRange

#: Leaf hashes handed to the tree at once while counting (bounded memory, bulk hashing).
_HASH_BATCH = 4096

# The canonical (RFC 8785) form of a leaf, as the strict parser accepts it. Ids cannot hold a
# quote, so a fixed ballot_id position lets every later leaf with the same election, type and
# selections reuse the first one's full check: they differ only in the 32 hex digits.
_LEAF_SHAPE = re.compile(
    rb'\{"ballot_id":"([0-9a-f]{32})","election":"([^"]*)","selections":(\{[^\n]*\}),"type":"([a-z]+)",'
    rb'"version":"' + re.escape(LEAF_VERSION.encode()) + rb'"\}')


# The canonical form of a leaf v2 (no string in it needs escaping), so a match is a strict
# parse without decoding and re-encoding the JSON; anything else takes the full parser.
_LEAF_V2_SHAPE = re.compile(
    rb'\{"ballot_id":"([0-9a-f]{32})","election":"([a-z0-9][a-z0-9._-]{0,63})","sealed":"([A-Za-z0-9+/]+={0,2})",'
    rb'"type":"(ballot|postal)","version":"' + re.escape(SEALED_LEAF_VERSION.encode()) + rb'"\}')


def parse_sealed_leaf(data: bytes) -> SealedLeaf:
    """:meth:`SealedLeaf.from_bytes`, with a fast path for the canonical shape (same verdicts)."""
    shape = _LEAF_V2_SHAPE.fullmatch(data)
    if shape is not None:
        sealed = base64.b64decode(shape.group(3))
        if base64.b64encode(sealed) == shape.group(3):
            return SealedLeaf(election=shape.group(2).decode(), type=shape.group(4).decode(),
                              ballot_id=shape.group(1).decode(), sealed=sealed)
    return SealedLeaf.from_bytes(data)


class Recount:
    """Counts leaves one at a time, checking each one strictly.

    Per leaf: the strict parser's verdict (cached per distinct election/type/selections,
    so a million leaves cost a regular-expression match and a dictionary lookup each), the
    election id, the selections against the definition, and a ballot id no earlier leaf
    used. Raises VerificationError ``entry <index>: ...`` at the first bad leaf.
    """

    def __init__(self, election: Election):
        self.election = election
        self.size = 0
        self._known: dict[tuple[bytes, bytes, bytes], tuple[str, tuple[tuple[str, ...], ...]]] = {}
        self._patterns: Counter[tuple[str, tuple[tuple[str, ...], ...]]] = Counter()
        self._ballot_ids: set[bytes] = set()
        self._invalid: Counter[str] = Counter()

    def add(self, leaf: bytes) -> None:
        index = self.size
        shape = _LEAF_SHAPE.fullmatch(leaf)
        if shape is None:
            pattern, ballot_id = self._check(index, leaf)
        else:
            ballot_id, election, selections, kind = shape.groups()
            key = (election, selections, kind)
            known = self._known.get(key)
            if known is None:
                known, _ = self._check(index, leaf)
                self._known[key] = known
            pattern = known
        if ballot_id in self._ballot_ids:
            raise VerificationError(
                f"entry {index} repeats ballot id {ballot_id.decode()} of an earlier entry: a ballot is in the log twice")
        self._ballot_ids.add(ballot_id)
        self._patterns[pattern] += 1
        self.size += 1

    def _check(self, index: int, data: bytes) -> tuple[tuple[str, tuple[tuple[str, ...], ...]], bytes]:
        try:
            leaf = Leaf.from_bytes(data)
        except FormatError as exc:
            raise FormatError(f"entry {index}: {exc}") from None
        if leaf.election != self.election.id:
            raise VerificationError(f"entry {index} belongs to election {leaf.election!r}, not {self.election.id!r}")
        selections = {contest: list(options) for contest, options in leaf.selections.items()}
        try:
            clean = self.election.validate_selections(selections)
        except BallotError as exc:
            raise VerificationError(f"entry {index} does not fit the election definition: {exc}") from None
        if clean != selections:
            raise VerificationError(f"entry {index} does not fit the election definition: selections {selections!r}")
        pattern = (CHANNEL_OF_LEAF_TYPE[leaf.type], tuple(tuple(clean[c.id]) for c in self.election.contests))
        return pattern, leaf.ballot_id.encode()

    def tally(self, root_hash: bytes, openings: str | None = None) -> Tally:
        """The counts so far, as the tally of a tree of ``self.size`` leaves with ``root_hash``.

        ``openings`` (sealed elections) is the digest of the openings file the counts came from.
        """
        contests = self.election.contests
        votes: Counter[tuple[str, str, str]] = Counter()
        blank: Counter[str] = Counter()
        ballots: Counter[str] = Counter()
        ballots.update(self._invalid)
        for (channel, chosen), n in self._patterns.items():
            ballots[channel] += n
            for contest, options in zip(contests, chosen):
                if not options:
                    blank[contest.id] += n
                for option in options:
                    votes[(channel, contest.id, option)] += n
        return Tally(
            election=self.election.id, origin=self.election.log_origin, size=self.size, root_hash=root_hash,
            definition=definition_digest(self.election),
            contests=tuple(
                ContestCount(c.id, tuple(OptionCount(o, votes[(ONLINE_CHANNEL, c.id, o)], votes[(POSTAL_CHANNEL, c.id, o)])
                                         for o in c.option_ids), blank[c.id])
                for c in contests),
            ballots_online=ballots[ONLINE_CHANNEL], ballots_postal=ballots[POSTAL_CHANNEL],
            invalid_online=self._invalid[ONLINE_CHANNEL], invalid_postal=self._invalid[POSTAL_CHANNEL],
            openings=openings)


class SealedRecount(Recount):
    """Counts sealed entries (leaf v2) from their openings, one entry at a time.

    Per entry: the strict leaf v2 parser, the election id, a ballot id no earlier entry
    used, and the opening for this index and ballot id. With ``reopen`` (the audit) every
    opening is re-run with its published secret (:func:`hsm_signer.openings.check_opening`);
    the tally, which has just produced the openings itself, only matches them to entries.
    Valid openings count their selections; invalid ones count as ``invalid`` per channel.
    """

    def __init__(self, election: Election, *, reopen: bool):
        super().__init__(election)
        self.reopen = reopen
        self.padded = padded_size(election)

    def add_sealed(self, data: bytes, opening: Opening) -> None:
        index = self.size
        try:
            leaf = parse_sealed_leaf(data)
        except FormatError as exc:
            raise FormatError(f"entry {index}: {exc}", exc.code) from None
        if leaf.election != self.election.id:
            raise VerificationError(f"entry {index} belongs to election {leaf.election!r}, not {self.election.id!r}")
        ballot_id = leaf.ballot_id.encode()
        if ballot_id in self._ballot_ids:
            raise VerificationError(
                f"entry {index} repeats ballot id {leaf.ballot_id} of an earlier entry: a ballot is in the log twice")
        if self.reopen:
            check_opening(opening, leaf, self.election, self.padded, index)
        elif opening.index != index or opening.ballot_id != leaf.ballot_id:
            raise VerificationError(f"opening {opening.index} (ballot {opening.ballot_id}) does not belong to entry "
                                    f"{index} (ballot {leaf.ballot_id})", "opening.ballot-id")
        self._ballot_ids.add(ballot_id)
        channel = CHANNEL_OF_LEAF_TYPE[leaf.type]
        if opening.status == VALID:
            assert opening.selections is not None
            self._patterns[(channel, tuple(tuple(opening.selections[c.id]) for c in self.election.contests))] += 1
        else:
            self._invalid[channel] += 1
        self.size += 1


def count_sealed(election: Election, entries: Iterable[tuple[bytes, Opening]], openings: str, *,
                 reopen: bool) -> Tally:
    """Count sealed ``entries`` (each leaf with its opening, the whole log in order); the
    tally includes their root and ``openings`` (the digest of the openings file)."""
    recount, edge, hashes = SealedRecount(election, reopen=reopen), CompactRange(), bytearray()
    for leaf, opening in entries:
        recount.add_sealed(leaf, opening)
        hashes += leaf_hash(leaf)
        if len(hashes) >= _HASH_BATCH * 32:
            edge.extend(hashes)
            hashes.clear()
    edge.extend(hashes)
    return recount.tally(edge.root(), openings)


def count_leaves(election: Election, leaves: Iterable[bytes]) -> Tally:
    """Count ``leaves`` (a whole log, in order) strictly; the tally includes their root."""
    recount, edge, hashes = Recount(election), CompactRange(), bytearray()
    for leaf in leaves:
        recount.add(leaf)
        hashes += leaf_hash(leaf)
        if len(hashes) >= _HASH_BATCH * 32:
            edge.extend(hashes)
            hashes.clear()
    edge.extend(hashes)
    return recount.tally(edge.root())


__all__ = ["Recount", "SealedRecount", "count_leaves", "count_sealed", "parse_sealed_leaf"]
