"""The composition root: builds the running service's parts from one :class:`Config`.

Opens the HSM, the storage and the ceremony's key bundle, checks that the HSM holds the
keys the bundle publishes (same public keys), and wires the ballot box to the sequencer.
Web processes and CLI commands get everything they need from a :class:`Service`; nothing
else reads configuration.

Every choice is made here, once, when the service is opened: who signs batches (a
sequencer in this process, or another process whose commits this one follows), how
requests wait for receipts (woken by those batches, or polling when this process learns of
none), and how they learn that the signer is failing (:class:`~hsm_signer.watch.SignerHealth`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import config as config_mod
from .ballots import BallotBox
from .bundle import CHECKPOINT, CODE_HMAC, TALLY, KeyBundle
from .deferred import DeferredMac, DeferredSigner
from .errors import ConfigError
from .hsm import Hsm, open_hsm
from .notify import BatchWaiter, Notifier, PollingWaiter
from .sequencer import Sequencer, SequencerBusyError, SignerState
from .signer import Mac, Signer
from .storage import Storage, open_storage
from .watch import CommitWatcher, SignerHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceKeys:
    """The keys a service signs and hashes with, passed in as objects (python-tuf style).

    Anything with the :class:`~hsm_signer.signer.Signer` / :class:`~hsm_signer.signer.Mac`
    interface will do: the HSM's keys (:func:`hsm_keys`, the default), or a benchmark's
    slow signer wrapped around them. Whatever is passed in, :meth:`Service.open` checks the
    signers against the published key bundle, so nothing is signed with a key it would not
    verify.
    """

    checkpoint: Signer
    tally: Signer
    code_mac: Mac


#: How a service gets its keys: from its HSM and the published bundle.
KeyFactory = Callable[[Any, KeyBundle], ServiceKeys]


def hsm_keys(hsm: Any, bundle: KeyBundle) -> ServiceKeys:
    """The bundle's keys on ``hsm``: checkpoint and code keys now (or, when the HSM is away,
    on first use once it appears), the tally key on first use (only officials tally)."""
    checkpoint, tally, code = bundle.key(CHECKPOINT), bundle.key(TALLY), bundle.key(CODE_HMAC)
    tally_signer = DeferredSigner(tally, lambda: hsm.signer(tally.label))
    if hsm.available:
        return ServiceKeys(hsm.signer(checkpoint.label), tally_signer, hsm.mac(code.label))
    return ServiceKeys(DeferredSigner(checkpoint, lambda: hsm.signer(checkpoint.label)), tally_signer,
                       DeferredMac(code, lambda: hsm.mac(code.label)))


def _check_keys(keys: ServiceKeys, bundle: KeyBundle, bundle_path: object) -> None:
    for purpose, signer in ((CHECKPOINT, keys.checkpoint), (TALLY, keys.tally)):
        entry = bundle.key(purpose)
        if signer.public_key_der != entry.public_key_der:
            raise ConfigError(f"the {purpose} key {signer.key_id!r} is not the {purpose} key {entry.label!r} "
                              f"published in {bundle_path}: what it signed would not verify; point keys.bundle "
                              "at this token's ceremony bundle")


@dataclass
class Service:
    config: config_mod.Config
    storage: Storage
    bundle: KeyBundle
    hsm: Hsm
    keys: ServiceKeys
    ballots: BallotBox
    notifier: Notifier
    health: SignerHealth
    sequencer: Sequencer | None = None
    watcher: CommitWatcher | None = None
    clock: Callable[[], float] = time.time

    @classmethod
    def open(cls, cfg: config_mod.Config, *, with_sequencer: bool = False,
             follow_commits: bool = False, hsm_may_be_away: bool = False,
             keys: KeyFactory | None = None, storage: Storage | None = None,
             clock: Callable[[], float] = time.time) -> "Service":
        """Open the parts named by ``cfg``; :meth:`start` sets them running.

        ``with_sequencer``: this process signs batches (a sequencer thread, from :meth:`start`).
        ``follow_commits``: a sequencer in another process signs and this one learns of its
        batches from the database; with ``with_sequencer`` too, that is the fallback when
        another sequencer already holds the log. With neither, receipts are polled for.
        ``hsm_may_be_away`` (servers): start even while the HSM cannot be reached; its keys
        are then found, and checked against the bundle, when it appears (:mod:`.deferred`),
        and until then casting answers 503 and nothing is signed.
        ``keys``: makes the signers and the code MAC from the HSM and the bundle (default:
        the HSM's own keys). ``storage``: the database to use instead of ``cfg``'s
        (it is closed with the service). ``clock`` (Unix seconds) decides when a poll's
        ``opens_at`` and ``closes_at`` have come (tests pass their own).
        """
        bundle = KeyBundle.load(cfg.key_bundle)
        hsm = open_hsm(cfg.hsm, may_be_away=hsm_may_be_away)
        try:
            service_keys = (keys or hsm_keys)(hsm, bundle)
            _check_keys(service_keys, bundle, cfg.key_bundle)
            if hsm.available and bundle.has_sealing_key and hsm.key_exists(bundle.key("sealing").label):
                raise ConfigError(
                    f"the service's HSM token holds the sealing key {bundle.key('sealing').label!r}: the running "
                    "service must never be able to open ballots; the sealing key belongs on its own token, whose "
                    "PIN only the tally trustees hold (run the ceremony again)")
            storage = storage if storage is not None else open_storage(cfg.storage_url)
        except BaseException:
            hsm.close()
            raise
        notifier = Notifier()
        sequencer = _sequencer(cfg, storage, bundle, service_keys.checkpoint, notifier, clock) \
            if with_sequencer else None
        health = SignerHealth(storage, sequencer)
        batches_announced = with_sequencer or follow_commits
        waiter = BatchWaiter(notifier) if batches_announced else PollingWaiter()
        ballots = BallotBox(storage, service_keys.code_mac, notifier, waiter=waiter, signer_healthy=health.healthy,
                            resubmit_window=cfg.voting.resubmit_window_minutes * 60.0, clock=clock,
                            sealing_key=bundle.sealing_point() if bundle.has_sealing_key else None,
                            allow_clear_ballots=cfg.voting.allow_clear_ballots)
        watcher = CommitWatcher(storage, notifier) if follow_commits else None
        return cls(config=cfg, storage=storage, bundle=bundle, hsm=hsm, keys=service_keys, ballots=ballots,
                   notifier=notifier, health=health, sequencer=sequencer, watcher=watcher, clock=clock)

    def make_sequencer(self) -> Sequencer:
        """A new sequencer over this service's log (closing the poll drains with one)."""
        return _sequencer(self.config, self.storage, self.bundle, self.keys.checkpoint, self.notifier, self.clock)

    def signer_status(self) -> dict:
        """How the sequencer is doing: this process's own, or the heartbeat of another's."""
        return self.health.status()

    def tally_signer(self) -> Signer:
        """The tally key (checked against the bundle when the service opened, and when found)."""
        return self.keys.tally

    def start(self) -> "Service":
        """Start signing, or following the sequencer that signs.

        Raises SequencerBusyError when this process was to sign, another sequencer holds
        the log and ``follow_commits`` was not asked for.
        """
        if self.sequencer is not None:
            try:
                self.sequencer.start()
            except SequencerBusyError:
                if self.watcher is None:
                    raise
                log.info("another sequencer signs for this database; this process follows its batches")
                self.sequencer = None
        if self.watcher is not None and self.sequencer is None:
            self.watcher.start()
        return self

    def close(self) -> None:
        self.ballots.close()
        if self.watcher is not None:
            self.watcher.stop()
        if self.sequencer is not None:
            self.sequencer.stop()
        self.storage.close()
        self.hsm.close()


def _sequencer(cfg: config_mod.Config, storage: Storage, bundle: KeyBundle, signer: Signer,
               notifier: Notifier, clock: Callable[[], float] = time.time) -> Sequencer:
    return Sequencer(storage, signer, bundle.key("checkpoint").verifier().name, SignerState(cfg.sequencer.state_file),
                     batch_size=cfg.sequencer.batch_size, max_wait=cfg.sequencer.max_wait_ms / 1000,
                     notifier=notifier, clock=clock)
