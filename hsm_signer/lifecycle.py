"""The life cycle of a poll: open it, close it, sign its tally.

Closing is the one transition with work attached: stop intake first (state ``closed``:
every new cast is refused from that instant), then make sure every stored ballot is
sequenced and covered by a signed checkpoint — the *final* checkpoint, which the tally
is bound to. If a sequencer is running elsewhere (the demo server, a separate
``hsm-signer sequencer``), closing waits for it; otherwise it drains the queue itself.

Tallying counts the final tree of a closed poll (:mod:`hsm_signer.recount`) and has the
HSM tally key sign the result (:mod:`hsm_signer.tally` is its format). A sealed election
(leaf v2) is first opened, entry by entry, through the sealing token the tally trustees
activate (:mod:`hsm_signer.unsealing`); its tally counts the stored openings and binds
their digest. It never signs
a tally for an open poll or a tree whose entries do not hash to the final signed
checkpoint, and never re-signs a different result.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from .bundle import CHECKPOINT, TALLY, KeyBundle
from .election import CLOSED, OPEN, Election, check_transition, human_time
from .errors import ConfigError, ElectionError, VerificationError
from .log.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from .tally import Tally, open_tally
from .record import READ_CHUNK
from .recount import count_leaves, count_sealed
from .openings import DIGEST_PREFIX, Opening
from .log.leaf import SealedLeaf, parse_leaf
from .sequencer import SequencerBusyError


def open_poll(storage, election_id: str, *, now: float | None = None) -> None:
    """Open the poll; refused when its ``closes_at`` has passed (it would accept no ballot).
    Before ``opens_at`` the poll opens, and ballots are accepted from ``opens_at``."""
    record = storage.get_election(election_id)
    check_transition(record.state, OPEN, election_id)
    if record.election.closes_by(time.time() if now is None else now):
        raise ElectionError(
            f"election {election_id!r} has closes_at {human_time(record.election.closes_at or '')}, which has passed: "
            "open, it would accept no ballot. Correct closes_at in the definition and create the election under "
            "a new id (`hsm-signer election create`); see docs/ELECTIONS.md")
    storage.set_state(election_id, OPEN)


def close_poll(service, election_id: str, *, timeout: float = 300.0,
               progress: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Close the poll and return the final signed checkpoint ``(size, note)``."""
    storage = service.storage
    record = storage.get_election(election_id)
    if record.state != CLOSED:
        check_transition(record.state, CLOSED, election_id)
        storage.set_state(election_id, CLOSED)
    storage.forget_links(election_id)  # no ballot can be resubmitted now: nothing links codes to ballots
    deadline = time.monotonic() + timeout
    while True:
        try:
            sequencer = service.make_sequencer()
            with sequencer.exclusive():
                sequencer.drain(election_id)
                final = sequencer.finalise(election_id)
            return final
        except SequencerBusyError:
            # Another sequencer holds the lock: it will sign the remaining ballots.
            pending = len(storage.pending(election_id, 1))
            latest = storage.latest_checkpoint(election_id)
            size = storage.tree_size(election_id)
            if not pending and latest is not None and latest[0] == size:
                return latest
            if progress:
                progress(f"waiting for the running sequencer to sign the last ballots (tree size {size})")
            if time.monotonic() > deadline:
                raise ElectionError(f"the running sequencer did not cover every ballot of {election_id!r} "
                                    f"within {timeout:.0f} s; check its log and the HSM") from None
            time.sleep(0.2)


@dataclass(frozen=True)
class SignedTally:
    tally: Tally
    note: str
    created: bool  # False: the same tally had already been signed and stored


def tally_election(service, election_id: str, *,
                   progress: Callable[[int, int], None] | None = None,
                   open_box: Callable[[Election, int], None] | None = None) -> SignedTally:
    """Count the final tree of a closed election and have the HSM tally key sign the result.

    Refuses an election that is not closed, a final checkpoint that does not cover every
    stored entry or does not verify, and entries that do not hash to it. Tallying again
    returns the stored tally when the result is the same, and refuses a different one.

    A sealed election's entries without a stored opening are first opened by
    ``open_box(election, size)`` (the command builds it from the trustees' sealing token:
    :func:`hsm_signer.unsealing.open_box`); the tally then counts the stored openings.
    """
    storage, bundle = service.storage, service.bundle
    record = storage.get_election(election_id)
    if record.state != CLOSED:
        raise ElectionError(f"election {election_id!r} is {record.state}: close the poll first "
                            f"(`hsm-signer election close {election_id}`); an open poll is never tallied")
    final = _final_checkpoint(storage, bundle, record.election)
    if final.size and isinstance(parse_leaf(storage.entries(election_id, 0, 1)[0]), SealedLeaf):
        if storage.openings_count(election_id) < final.size:
            if open_box is None:
                raise ConfigError(
                    f"election {election_id!r} holds sealed ballots: opening them needs the sealing token, activated "
                    "by the tally trustees; add [tally.sealing] (token_label, pin) to the officials' configuration")
            open_box(record.election, final.size)  # hsm_signer.unsealing.open_box, through the trustees' token
        tally = _count_sealed_stored(storage, record.election, final.size, progress)
    else:
        tally = _count_stored(storage, record.election, final.size, progress)
    if tally.root_hash != final.root_hash:
        raise VerificationError(
            f"the stored entries of {election_id!r} do not hash to the root of the final checkpoint (size {final.size}): "
            "the database was altered after signing; refusing to sign a tally")
    text = tally.checkpoint().to_text()
    existing = storage.get_tally(election_id)
    if existing is not None:
        return _same_or_refuse(existing, text, bundle, election_id)
    note = sign_checkpoint(tally.checkpoint(), bundle.key(TALLY).note_key_name, service.tally_signer())
    if not storage.store_tally(election_id, note):
        # Another official's tally landed first (the table holds one per election).
        return _same_or_refuse(storage.get_tally(election_id), text, bundle, election_id)
    return SignedTally(tally, note, True)


def _final_checkpoint(storage, bundle: KeyBundle, election: Election) -> Checkpoint:
    election_id, origin = election.id, election.log_origin
    size = storage.tree_size(election_id)
    latest = storage.latest_checkpoint(election_id)
    if storage.pending(election_id, 1) or latest is None or latest[0] != size:
        raise ElectionError(f"election {election_id!r} has no final checkpoint covering all its entries; "
                            f"run `hsm-signer election close {election_id}` again to sign it")
    try:
        checkpoint = open_checkpoint(latest[1], [bundle.verifier(CHECKPOINT)])
    except VerificationError as exc:
        raise type(exc)(f"the stored final checkpoint of {election_id!r} does not verify: {exc}") from None
    if checkpoint.origin != origin or checkpoint.size != size:
        raise VerificationError(f"the stored final checkpoint of {election_id!r} is for {checkpoint.origin!r} "
                                f"size {checkpoint.size}, not {origin!r} size {size}", "checkpoint.origin")
    return checkpoint


def _count_stored(storage, election: Election, size: int,
                  progress: Callable[[int, int], None] | None) -> Tally:
    def leaves() -> Iterable[bytes]:
        for start in range(0, size, READ_CHUNK):
            end = min(start + READ_CHUNK, size)
            chunk = storage.entries(election.id, start, end)
            if len(chunk) != end - start:
                raise VerificationError(f"storage returned {len(chunk)} entries for indexes {start}..{end - 1} of "
                                        f"{election.id!r}: the log has a gap")
            yield from chunk
            if progress:
                progress(end, size)
    return count_leaves(election, leaves())


def _count_sealed_stored(storage, election: Election, size: int,
                         progress: Callable[[int, int], None] | None) -> Tally:
    digest = hashlib.sha256()

    def entries() -> Iterable[tuple[bytes, Opening]]:
        for start in range(0, size, READ_CHUNK):
            end = min(start + READ_CHUNK, size)
            leaves, lines = storage.entries(election.id, start, end), storage.openings(election.id, start, end)
            if len(leaves) != end - start or len(lines) != end - start:
                raise VerificationError(f"storage returned {len(leaves)} entries and {len(lines)} openings for "
                                        f"{start}..{end - 1} of {election.id!r}: the log or its openings have a gap")
            for index, (leaf, line) in enumerate(zip(leaves, lines), start):
                digest.update(line)
                yield leaf, Opening.from_line(line, f"stored opening {index}")
            if progress:
                progress(end, size)
    tally = count_sealed(election, entries(), "", reopen=False)
    return replace(tally, openings=openings_digest_of(digest))


def _same_or_refuse(existing: str, text: str, bundle: KeyBundle, election_id: str) -> SignedTally:
    stored, _ = open_tally(existing, bundle)
    if stored.checkpoint().to_text() != text:
        raise ElectionError(
            f"election {election_id!r} already has a signed tally with a different result; it is never re-signed. "
            "Investigate: the stored entries or the definition changed since it was signed")
    return SignedTally(stored, existing, False)


def openings_digest_of(digest: "hashlib._Hash") -> str:
    return DIGEST_PREFIX + digest.hexdigest()
