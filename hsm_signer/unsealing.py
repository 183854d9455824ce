"""Opening the box: every sealed ballot of a closed election, through the HSM, durably.

After the poll closes, the tally trustees' shares rebuild the sealing token's PIN (never
the service's). :func:`open_box` then opens the final log's entries in log order: the HSM
does the ECDH (``CKM_ECDH1_DERIVE`` with the derive-only sealing key), the rest (HPKE's
key schedule, AES-256-GCM, the plaintext format and the election's rules) is
:func:`hsm_signer.openings.judge`. Each entry's :class:`~hsm_signer.openings.Opening` is
stored as it is made, a batch per transaction, always a prefix of the log: killed at any
moment, the next run carries on from the first entry without one, and since every step
is deterministic the result is the same as an uninterrupted run.

Speed: SoftHSM derives ~1,000-2,700 secrets/s in one session (the derivation, reading the
secret and destroying it are three PKCS#11 calls under the process lock), so several
worker processes open in parallel, each with its own module instance, session and lock;
this process reads entries, stores openings in order and reports progress.

The PIN is rebuilt in memory, handed to the workers through their start-up pipe (never
argv, the environment or a file), and never logged.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .election import Election
from .errors import ConfigError, VerificationError
from .hsm import Hsm
from .hsm.deriver import HsmDeriver
from .log.hpke import shared_secret_from_dh
from .log.sealed import padded_size
from .openings import judge
from .recount import parse_sealed_leaf

#: Entries per task handed to a worker (one trip through its PKCS#11 lock) and per stored batch.
CHUNK = 256


@dataclass(frozen=True)
class SealingAccess:
    """Everything a worker needs to reach the sealing key. The PIN is held in memory only."""

    module: str
    token_label: str
    key_label: str
    public_point: bytes  # the sealing key keys.json publishes: the token's must be the same
    pin: str = field(repr=False)
    softhsm_conf: str | None = None

    def open(self) -> tuple[Hsm, HsmDeriver]:
        if self.softhsm_conf:
            os.environ["SOFTHSM2_CONF"] = self.softhsm_conf
        hsm = Hsm(self.module, token_label=self.token_label, pin_source=_TrusteesPin(self.pin)).open()
        try:
            deriver = hsm.deriver(self.key_label)
            if deriver.public_key != self.public_point:
                raise ConfigError(f"the key {self.key_label!r} on token {self.token_label!r} is not the sealing key "
                                  "published in keys.json: ballots were sealed to another key")
        except BaseException:
            hsm.close()
            raise
        return hsm, deriver


@dataclass(frozen=True)
class _TrusteesPin:
    pin: str = field(repr=False)
    production_grade: bool = True

    def get_pin(self) -> str:
        return self.pin

    def describe(self) -> str:
        return "the PIN rebuilt from the tally trustees' shares"


# --- the worker processes -------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(access: SealingAccess, election: dict) -> None:
    _worker["hsm"], _worker["deriver"] = access.open()
    _worker["election"] = Election.from_dict(election)
    _worker["size"] = padded_size(_worker["election"])
    _worker["point"] = access.public_point


def open_chunk(deriver: Any, point: bytes, election: Election, size: int,
               chunk: list[tuple[int, bytes]]) -> list[bytes]:
    """The opening lines of ``chunk`` (``(index, leaf bytes)`` pairs), with one HSM trip."""
    leaves = []
    for index, data in chunk:
        try:
            leaves.append(parse_sealed_leaf(data))
        except VerificationError as exc:
            raise VerificationError(f"entry {index} is not a sealed ballot (leaf v2): {exc}") from None
    encs = [leaf.sealed[:65] for leaf in leaves]
    dhs = deriver.derive_many(encs)
    lines = []
    for (index, _), leaf, enc, dh in zip(chunk, leaves, encs, dhs):
        secret = b"" if dh is None else shared_secret_from_dh(dh, enc, point)
        lines.append(judge(leaf, secret, election, size, index).to_line())
    return lines


def _work(chunk: list[tuple[int, bytes]]) -> list[bytes]:
    return open_chunk(_worker["deriver"], _worker["point"], _worker["election"], _worker["size"], chunk)


# --- the coordinator ------------------------------------------------------------------------

def open_box(storage: Any, election: Election, size: int, access: SealingAccess, *, workers: int = 1,
             progress: Callable[[int, int], None] | None = None) -> int:
    """Open entries ``0 .. size-1`` of ``election`` that have no stored opening yet; return
    how many were opened now. Openings already stored (an earlier, interrupted run) stay."""
    done = storage.openings_count(election.id)
    if done > size:
        raise VerificationError(f"{done} openings are stored for {election.id!r} but its final log has {size} "
                                "entries; the database was altered")
    if done == size:
        return 0
    # Fail fast, in this process, on a wrong PIN or key, before any worker starts.
    hsm, deriver = access.open()
    if progress:
        progress(done, size)

    def chunks() -> Iterator[list[tuple[int, bytes]]]:
        for start in range(done, size, CHUNK):
            end = min(start + CHUNK, size)
            leaves = storage.entries(election.id, start, end)
            if len(leaves) != end - start:
                raise VerificationError(f"storage returned {len(leaves)} entries for {start}..{end - 1} of "
                                        f"{election.id!r}: the log has a gap")
            yield list(zip(range(start, end), leaves))

    position = done
    try:
        if workers <= 1:
            point, sized = access.public_point, padded_size(election)
            results: Iterator[list[bytes]] = (open_chunk(deriver, point, election, sized, c) for c in chunks())
            pool = None
        else:
            hsm.close()
            context = multiprocessing.get_context("spawn")
            pool = context.Pool(workers, initializer=_start_worker, initargs=(access, election.to_dict()))
            results = pool.imap(_work, chunks())
        try:
            for lines in results:
                storage.store_openings(election.id, position, lines)
                position += len(lines)
                if progress:
                    progress(position, size)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        hsm.close()
    return position - done
