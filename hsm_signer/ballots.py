"""Casting ballots: code check, durable storage, and the signed receipt (the web's core).

``cast`` follows the invariants in order: the code is hashed in the HSM (no HSM, no
vote: 503 before anything is stored); the code is consumed and the ballot stored in one
transaction; the receipt is returned only once a signed checkpoint covers the ballot.
Resubmitting the identical ballot with the same code returns the original receipt, but
only within the resubmission window after casting (``resubmit_window``, default 30
minutes); another ballot with a used code is a conflict.

What makes the resubmission possible is the *link*: the ballot id and a keyed digest of
what was submitted, encrypted under keys derived from the code itself. Only the code
holder can open it, the database alone connects nothing, and once the window ends the
link is destroyed (checked on every read, purged by the sequencer, all of an election's
at the close, and the moment a *different* ballot is sent with the code, so that whoever
holds a used code gets one guess at the vote, not one per possible ballot), after which
nothing connects a code to a ballot. Code status says only unused, used online or used by
post: never a ballot, receipt or selection.
This module never logs a code and never puts one in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import codes as codes_mod
from .election import OPEN, BallotError, Election
from .errors import ConfigError, ElectionError, FormatError, HsmSignerError, HsmUnavailableError, PollNotOpenError
from .log import sealed as sealed_mod
from .log.leaf import BALLOT, BALLOT_ID_PATTERN, POSTAL as POSTAL_LEAF, Leaf, SealedLeaf, new_ballot_id
from .log.receipt import Receipt
from .log.tree import MerkleTree
from .intake import CastIntake, Ticket
from .notify import Notifier, PollingWaiter, ReceiptWaiter
from .signer import Mac
from .canonical import canonicalize
from .storage.base import ONLINE, POSTAL, BallotIdTakenError, CastOutcome, CastRequest, Storage, StoreView, UnknownCodeError

log = logging.getLogger(__name__)

#: Codes hashed per trip through the HSM's lock (~40 ms of SoftHSM HMACs; a postal batch of
#: 48,000 rows makes 48 trips, not 48,000).
HASH_TRIP = 1000

#: How long after casting the identical ballot, sent again with its code, gets the same receipt.
RESUBMIT_WINDOW = 30 * 60.0


class InvalidCodeError(ElectionError):
    """A code this election does not know, or text that cannot be a code at all.

    ``malformed``: the text cannot be a code (checked before any HSM call), which rate
    limits need not count. Its ``kind`` ("length", "symbol", "typo": see
    :class:`~hsm_signer.codes.MalformedCodeError`) picks a message that helps the voter fix
    it; that is computed from the text alone, so it tells nothing about which codes exist.
    Every well-formed code that is not this election's gets the one same answer.
    """

    MESSAGES = {
        None: "this voting code is not valid for this election; check it and try again",
        "length": "a voting code has 17 letters and digits; check that you typed all of it",
        "symbol": "a voting code has only digits and the letters A to Z (but no U); check for a mistyped character",
        "typo": "this code has a typo: one of its characters does not match the others; "
                "check each character against your voting form",
    }

    def __init__(self, *, malformed: bool = False, kind: str | None = None) -> None:
        self.malformed = malformed
        self.kind = kind if malformed else None
        super().__init__(self.MESSAGES.get(self.kind, self.MESSAGES[None]))


class CodeUsedError(ElectionError):
    """The code was already used for a different ballot (or by post)."""

    def __init__(self, status: str):
        self.status = status
        how = "by post" if status == POSTAL else "online for a different ballot"
        super().__init__(f"this voting code has already been used {how}")


class ClearBallotsRefusedError(ConfigError):
    """No sealing key, and the configuration does not allow storing ballots in clear."""

    def __init__(self) -> None:
        super().__init__("the key bundle has no sealing key, so ballots could only be stored with their selections "
                         "in clear, which this service refuses: run a key ceremony that creates the sealing key "
                         "(ceremony/CEREMONY.md), or, only for an election begun before sealed ballots, set "
                         "allow_clear_ballots = true", "voting.allow_clear_ballots")


class ReceiptPendingError(HsmSignerError):
    """The ballot is stored but no signed checkpoint covers it yet (HSM slow or down)."""

    def __init__(self, ballot_id: str):
        self.ballot_id = ballot_id
        super().__init__("your ballot is stored, but its signed receipt is not ready yet; "
                         "submit again in a few seconds to get your receipt")


def _link_keys(code: str, election_id: str) -> tuple[bytes, bytes]:
    """(encryption key, digest key) of a code's link, derived from the code alone."""
    keys = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"hsm-signer/receipt-link/v2",
                info=election_id.encode()).derive(code.encode())
    return keys[:32], keys[32:]


def ballot_digest(code: str, election_id: str, submitted: bytes) -> bytes:
    """A keyed digest of what was submitted (canonical selections, or a client-sealed
    ballot's id and bytes): recognises an identical resubmission without keeping it in clear.
    Keyed by the code, so the small space of possible ballots cannot be tried against it."""
    return _digest_with(_link_keys(code, election_id)[1], submitted)


def seal_link(code: str, election_id: str, ballot_id: str, digest: bytes) -> bytes:
    return _seal_link_with(_link_keys(code, election_id)[0], election_id, ballot_id, digest)


def _digest_with(digest_key: bytes, submitted: bytes) -> bytes:
    return hmac.new(digest_key, submitted, hashlib.sha256).digest()


def _seal_link_with(link_key: bytes, election_id: str, ballot_id: str, digest: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(link_key).encrypt(nonce, ballot_id.encode() + digest, election_id.encode())


def open_link(code: str, election_id: str, link: bytes) -> tuple[str, bytes]:
    """``(ballot_id, digest)`` from a link; InvalidCodeError if this code did not make it."""
    try:
        plain = AESGCM(_link_keys(code, election_id)[0]).decrypt(link[:12], link[12:], election_id.encode())
    except InvalidTag:
        raise InvalidCodeError() from None
    return plain[:-32].decode(), plain[-32:]


@dataclass(frozen=True)
class HashedCode:
    """A normalised code with its keyed hash for one election, computed in the HSM.

    What :meth:`BallotBox.hash_codes` returns, so that a batch checked before it is
    recorded (a postal batch) hashes each code once. Its repr shows neither the code nor
    the hash."""

    election_id: str
    code: str = field(repr=False)
    digest: bytes = field(repr=False)


@dataclass(frozen=True)
class SealedBallot:
    """A ballot the voter's browser sealed: its random ballot id and ``enc || ct``."""

    ballot_id: str
    sealed: bytes


@dataclass(frozen=True)
class Submission:
    ballot_id: str
    new: bool  # stored by this call; False: the same ballot was already stored with this code
    election_id: str = ""
    seq: int | None = None  # the stored entry's arrival number, when this call stored it


@dataclass(frozen=True)
class Cast:
    """A cast ballot and its signed receipt: what a voter's request gets back."""

    ballot_id: str
    receipt: Receipt
    new: bool  # stored by this call (False: the same ballot was already stored with this code)


@dataclass(frozen=True)
class _Prepared:
    code: str            # normalised; never logged
    digest: bytes        # ballot_digest of what was submitted
    request: CastRequest


@dataclass(frozen=True)
class _Queued:
    """Ballots of one call: the errors found while preparing, the prepared ones, their ticket."""

    results: list
    prepared: list
    ticket: Ticket | None


@dataclass(frozen=True)
class CodeStatus:
    """All that a code tells: unused, used online or used by post. Never which ballot."""

    status: str  # unused | online | postal


class BallotBox:
    """Casting for one process. Its parts are passed in once, by the service.

    ``notifier`` is woken for every stored ballot (the sequencer's cue); ``waiter`` is how
    requests wait for receipts (default: polling); ``signer_healthy`` says whether the
    signer is known to be failing, so waiters give up after ``unhealthy_grace`` seconds
    instead of holding the request for the whole ``receipt_timeout``.
    """

    def __init__(self, storage: Storage, code_mac: Mac, notifier: Notifier | None = None, *,
                 waiter: ReceiptWaiter | None = None, receipt_timeout: float = 10.0,
                 signer_healthy: Callable[[], bool] | None = None, unhealthy_grace: float = 1.0,
                 intake: CastIntake | None = None, resubmit_window: float = RESUBMIT_WINDOW,
                 clock: Callable[[], float] = time.time, sealing_key: bytes | None = None,
                 allow_clear_ballots: bool = True):
        self.storage = storage
        # The election's sealing key (uncompressed P-256 point): ballots are sealed to it at
        # once and stored as leaf v2; the clear selections are never kept. Without one (a key
        # bundle from before sealed ballots) ballots are stored as leaf v1 only if
        # ``allow_clear_ballots`` (the service passes [voting] allow_clear_ballots, default no).
        self.sealing_key = sealing_key
        self.allow_clear_ballots = allow_clear_ballots
        self._sizes: dict[str, int] = {}
        self.resubmit_window = resubmit_window
        self.clock = clock
        # Ballots are stored through one writer per process, grouped per transaction.
        self.intake = intake or CastIntake(storage)
        self.code_mac = code_mac
        self.notifier = notifier
        self.waiter = waiter or PollingWaiter()
        self.receipt_timeout = receipt_timeout
        self.signer_healthy = signer_healthy or (lambda: True)
        self.unhealthy_grace = unhealthy_grace

    def close(self) -> None:
        """Store what is queued, then stop the intake's writer thread."""
        self.intake.close()

    # --- codes ---------------------------------------------------------------------------
    def _code(self, election_id: str, typed: str) -> tuple[str, bytes]:
        try:
            code = codes_mod.normalise(typed)
        except codes_mod.MalformedCodeError as exc:
            raise InvalidCodeError(malformed=True, kind=exc.kind) from None
        return code, self.code_mac.mac(codes_mod.code_message(election_id, code))

    def hash_codes(self, election_id: str, typed: Sequence[str | HashedCode]) -> list[HashedCode | InvalidCodeError]:
        """Each code normalised and hashed in the HSM, :data:`HASH_TRIP` per trip through its
        lock (a code already hashed for this election is kept as it is), or InvalidCodeError
        if the text cannot be a code."""
        normalised: list[str | HashedCode | InvalidCodeError] = []
        for text in typed:
            if isinstance(text, HashedCode) and text.election_id == election_id:
                normalised.append(text)
                continue
            try:
                normalised.append(codes_mod.normalise(text.code if isinstance(text, HashedCode) else text))
            except codes_mod.MalformedCodeError as exc:
                normalised.append(InvalidCodeError(malformed=True, kind=exc.kind))
        good = [code for code in normalised if isinstance(code, str)]
        many = getattr(self.code_mac, "mac_many", None) or (lambda items: [self.code_mac.mac(m) for m in items])
        messages = [codes_mod.code_message(election_id, code) for code in good]
        # Bounded trips: one never holds the process's PKCS#11 lock for long (the sequencer
        # signs through the same lock).
        hashes = iter([digest for start in range(0, len(messages), HASH_TRIP)
                       for digest in many(messages[start:start + HASH_TRIP])])
        return [HashedCode(election_id, code, next(hashes)) if isinstance(code, str) else code for code in normalised]

    def lookup_codes(self, election_id: str, typed: Sequence[str | HashedCode]) -> list[CodeStatus | InvalidCodeError]:
        """The status of each code (unused, online, postal), or InvalidCodeError: reads only
        (a postal batch is checked whole before anything is recorded)."""
        hashed = self.hash_codes(election_id, typed)
        known = [item for item in hashed if isinstance(item, HashedCode)]
        statuses = iter(self.storage.code_statuses(election_id, [item.digest for item in known]))
        results: list[CodeStatus | InvalidCodeError] = []
        for item in hashed:
            if isinstance(item, InvalidCodeError):
                results.append(item)
                continue
            status = next(statuses)
            results.append(InvalidCodeError() if status is None else CodeStatus(status))
        return results

    def code_status(self, election_id: str, typed: str) -> CodeStatus:
        _code, digest = self._code(election_id, typed)
        try:
            status, _link = self.storage.code_status(election_id, digest)
        except UnknownCodeError:
            raise InvalidCodeError() from None
        return CodeStatus(status)

    def padded_size(self, election: Election) -> int:
        """The sealed plaintext size of ``election`` (published with it, for the browser)."""
        size = self._sizes.get(election.id)
        if size is None:
            size = self._sizes[election.id] = sealed_mod.padded_size(election)
        return size

    def purge_links(self) -> int:
        """Destroy the links whose resubmission window has ended."""
        return self.storage.purge_links(int(self.clock()))

    # --- casting --------------------------------------------------------------------------
    def submit(self, election_id: str, typed: str, selections: object, channel: str = ONLINE) -> Submission:
        """Store the ballot (or find the identical earlier one). ``selections`` are sealed
        here at once; a :class:`SealedBallot` was sealed by the voter's browser."""
        result = self.submit_many(election_id, [(typed, selections)], channel)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def submit_many(self, election_id: str, ballots: Sequence[tuple[str | HashedCode, object]],
                    channel: str = ONLINE) -> list[Submission | ElectionError]:
        """Store several (code, selections) ballots, in as few transactions as the intake groups
        them; each gets its :class:`Submission` or its own error (invalid code or ballot, code
        used). An election that is not open fails the whole call."""
        return self._results(self._queue(election_id, ballots, channel))

    def submit_batches(self, election_id: str, batches: Iterable[Sequence[tuple[str | HashedCode, object]]],
                       channel: str = ONLINE) -> Generator[list[Submission | ElectionError], None, None]:
        """:meth:`submit_many` for each batch in turn, yielding each batch's results once it is
        stored, in order. The next batch is prepared (codes hashed, selections sealed) while
        the one before it is being stored, so sealing and the database's durable commits
        overlap (a postal batch). If preparing a batch fails, the batch before it is still
        stored and answered before the error is raised."""
        queued: _Queued | None = None
        try:
            for ballots in batches:
                done, queued = queued, self._queue(election_id, ballots, channel)
                if done is not None:
                    yield self._results(done)
            if queued is not None:
                done, queued = queued, None
                yield self._results(done)
        finally:
            if queued is not None:  # stopped early: the queued batch is stored all the same; wake the sequencer
                try:
                    self._results(queued)
                except Exception:  # noqa: BLE001 - the error that stopped the batches is the one to raise
                    log.warning("a queued batch of ballots failed while another error was raised", exc_info=False)

    def _queue(self, election_id: str, ballots: Sequence[tuple[str | HashedCode, object]],
               channel: str) -> "_Queued":
        """Check the election, prepare (hash, validate, seal) each ballot and queue the good
        ones for storing, without waiting for them."""
        if self.sealing_key is None and not self.allow_clear_ballots:
            raise ClearBallotsRefusedError()
        record = self.storage.get_election(election_id)
        if record.state != OPEN:
            raise PollNotOpenError(f"the poll for election {election_id!r} is {record.state}: "
                                f"{'it has not opened yet' if record.state == 'draft' else 'it has closed'}")
        refusal = record.election.schedule_refusal(self.clock())  # opens_at / closes_at, whatever the state
        if refusal is not None:
            raise PollNotOpenError(refusal)
        results: list[Submission | ElectionError | None] = [None] * len(ballots)
        prepared: list[tuple[int, _Prepared]] = []
        hashed = self.hash_codes(election_id, [typed for typed, _ in ballots])  # one HSM trip for the call
        for i, ((_, selections), code) in enumerate(zip(ballots, hashed)):
            try:
                prepared.append((i, self._prepare(record.election, code, selections, channel)))
            except ElectionError as exc:
                results[i] = exc
        ticket = self.intake.enqueue([item.request for _, item in prepared]) if prepared else None
        return _Queued(results, prepared, ticket)

    def _results(self, queued: "_Queued") -> list[Submission | ElectionError]:
        """Wait until the queued ballots are stored; each ballot's :class:`Submission` or error."""
        results, prepared = queued.results, queued.prepared
        outcomes = queued.ticket.results() if queued.ticket is not None else []
        stored, failure = False, None
        for (i, item), outcome in zip(prepared, outcomes):
            if isinstance(outcome, UnknownCodeError):
                results[i] = InvalidCodeError()
            elif isinstance(outcome, BallotIdTakenError):
                results[i] = BallotError("this ballot id is already in the log; seal the ballot again with a "
                                         "fresh random ballot id")
            elif isinstance(outcome, Exception):
                failure = failure or outcome  # the election closed meanwhile, or the database failed
            else:
                stored = stored or outcome.stored
                try:
                    results[i] = self._finish(item, outcome)
                except ElectionError as exc:
                    results[i] = exc
        if stored and self.notifier:
            self.notifier.wake_sequencer()  # also when another ballot of the call failed
        if failure is not None:
            raise failure  # what was stored stays stored: submitting again is idempotent
        return results

    def _prepare(self, election: Election, hashed: "HashedCode | InvalidCodeError", ballot: object, channel: str) -> "_Prepared":
        kind = BALLOT if channel == ONLINE else POSTAL_LEAF
        if isinstance(ballot, SealedBallot):
            leaf_bytes = self._client_sealed(election, ballot, kind)
            ballot_id, submitted = ballot.ballot_id, b"sealed\x00" + ballot.ballot_id.encode() + ballot.sealed
        else:
            clean = election.validate_selections(ballot)
            ballot_id, submitted = new_ballot_id(), b"selections\x00" + canonicalize(clean)
            if self.sealing_key is None:
                leaf_bytes = Leaf(election.id, kind, ballot_id, {c: tuple(o) for c, o in clean.items()}).to_bytes()
            else:
                box = sealed_mod.seal_ballot(self.sealing_key, election.id, channel, ballot_id, clean,
                                             self.padded_size(election))
                leaf_bytes = SealedLeaf(election.id, kind, ballot_id, box).to_bytes()
        if isinstance(hashed, InvalidCodeError):
            raise hashed  # after the selections: their errors come first, as they always did
        link_key, digest_key = _link_keys(hashed.code, election.id)  # derived once for both
        digest = _digest_with(digest_key, submitted)
        request = CastRequest(election.id, hashed.digest, channel, ballot_id, leaf_bytes,
                              _seal_link_with(link_key, election.id, ballot_id, digest), require_state=OPEN,
                              link_until=int(self.clock() + self.resubmit_window))
        return _Prepared(hashed.code, digest, request)

    def _client_sealed(self, election: Election, ballot: SealedBallot, kind: str) -> bytes:
        """The leaf of a browser-sealed ballot, after checking what can be checked unopened:
        a well-formed fresh-looking ballot id, the election's exact length, a P-256 point."""
        if self.sealing_key is None:
            raise BallotError("this election takes selections, not sealed ballots (it has no sealing key)")
        if not isinstance(ballot.ballot_id, str) or not BALLOT_ID_PATTERN.fullmatch(ballot.ballot_id):
            raise BallotError("sealed.ballot_id must be 32 lowercase hex digits (a fresh random 128-bit id)")
        try:
            box = sealed_mod.check_sealed(ballot.sealed, self.padded_size(election))
        except FormatError as exc:
            raise BallotError(f"sealed.ciphertext: {exc}") from None
        return SealedLeaf(election.id, kind, ballot.ballot_id, box).to_bytes()

    def _finish(self, item: "_Prepared", outcome: CastOutcome) -> Submission:
        request = item.request
        if outcome.stored:
            return Submission(request.ballot_id, new=True, election_id=request.election_id,
                              seq=outcome.entry.seq if outcome.entry else None)
        # The code was used before: the identical ballot again, within the window, is
        # idempotent; anything else (or after the window) conflicts.
        if outcome.status != request.channel or outcome.link is None or outcome.link_until is None \
                or outcome.link_until <= self.clock():
            raise CodeUsedError(outcome.status)
        ballot_id, digest = open_link(item.code, request.election_id, outcome.link)
        if not hmac.compare_digest(digest, item.digest):
            # Someone with the code sent another ballot: destroy the link at once, so that
            # trying ballot after ballot cannot find out which one this code cast.
            self.storage.forget_links(request.election_id, request.code_hash)
            raise CodeUsedError(outcome.status)
        return Submission(ballot_id, new=False, election_id=request.election_id)

    def cast(self, election_id: str, typed: str, selections: object, channel: str = ONLINE) -> Cast:
        """Submit, then wait for the signed receipt (ReceiptPendingError if it is slow).

        ``new`` says whether this call stored the ballot (the API answers 201) or found the
        same ballot already stored with this code (200).
        """
        submission = self.submit(election_id, typed, selections, channel)
        receipt = self.wait_for_receipt(submission.ballot_id, election_id=submission.election_id,
                                        seq=submission.seq)
        return Cast(submission.ballot_id, receipt, submission.new)

    # --- receipts ------------------------------------------------------------------------
    def receipt(self, ballot_id: str) -> Receipt | None:
        """The receipt for a sequenced ballot, from the first checkpoint that covers it."""
        entry = self.storage.entry_by_ballot(ballot_id)
        if entry is None or entry.leaf_index is None:
            return None
        covering = self.storage.checkpoint_covering(entry.election, entry.leaf_index)
        if covering is None:
            return None
        size, note = covering
        proof = MerkleTree(StoreView(self.storage, entry.election), size).inclusion_proof(entry.leaf_index, size)
        return Receipt(election=entry.election, leaf_index=entry.leaf_index, leaf=entry.leaf,
                       inclusion_proof=tuple(proof), checkpoint=note)

    def wait_for_receipt(self, ballot_id: str, timeout: float | None = None, *,
                         election_id: str | None = None, seq: int | None = None) -> Receipt:
        """The ballot's receipt once a signed checkpoint covers it, or ReceiptPendingError.

        The :class:`~hsm_signer.notify.ReceiptWaiter` decides when to look: with the entry's
        ``election_id`` and ``seq`` (from :class:`Submission`) a batch-fed waiter looks only
        once the batch that sequenced it is committed. A hint that proves wrong (sequenced,
        yet no receipt found) is dropped: from then on every batch is a reason to look.
        """
        started = time.monotonic()
        deadline = started + (self.receipt_timeout if timeout is None else timeout)
        look = self.waiter.ready(election_id, seq)
        while True:
            if look:
                receipt = self.receipt(ballot_id)
                if receipt is not None:
                    return receipt
                if seq is not None and self.waiter.ready(election_id, seq):
                    seq = None  # sequenced but not found (see hsm_signer.notify)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not self.signer_healthy()
                                  and time.monotonic() - started >= self.unhealthy_grace):
                raise ReceiptPendingError(ballot_id)
            look = self.waiter.wait(election_id, seq, remaining)


__all__ = ["BallotBox", "BallotError", "Cast", "CodeStatus", "SealedBallot", "Submission", "CodeUsedError", "InvalidCodeError",
           "ReceiptPendingError", "HsmUnavailableError", "seal_link", "open_link"]
