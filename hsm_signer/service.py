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
from dataclasses import dataclass, field

from . import config as config_mod
from .ballots import BallotBox
from .bundle import KeyBundle
from .deferred import DeferredMac, DeferredSigner
from .errors import ConfigError
from .hsm import Hsm, open_hsm
from .notify import BatchWaiter, Notifier, PollingWaiter
from .sequencer import Sequencer, SequencerBusyError, SignerState
from .signer import Mac, Signer
from .storage import Storage, open_storage
from .watch import CommitWatcher, SignerHealth

log = logging.getLogger(__name__)


@dataclass
class Service:
    config: config_mod.Config
    storage: Storage
    bundle: KeyBundle
    hsm: Hsm
    ballots: BallotBox
    notifier: Notifier
    health: SignerHealth
    sequencer: Sequencer | None = None
    watcher: CommitWatcher | None = None
    _checkpoint_signer: Signer | None = field(default=None, repr=False)

    @classmethod
    def open(cls, cfg: config_mod.Config, *, with_sequencer: bool = False,
             follow_commits: bool = False, hsm_may_be_away: bool = False) -> "Service":
        """Open the parts named by ``cfg``; :meth:`start` sets them running.

        ``with_sequencer``: this process signs batches (a sequencer thread, from :meth:`start`).
        ``follow_commits``: a sequencer in another process signs and this one learns of its
        batches from the database; with ``with_sequencer`` too, that is the fallback when
        another sequencer already holds the log. With neither, receipts are polled for.
        ``hsm_may_be_away`` (servers): start even while the HSM cannot be reached; its keys
        are then found, and checked against the bundle, when it appears (:mod:`.deferred`),
        and until then casting answers 503 and nothing is signed.
        """
        bundle = KeyBundle.load(cfg.key_bundle)
        hsm = open_hsm(cfg.hsm, may_be_away=hsm_may_be_away)
        storage = None
        try:
            code_key = bundle.key("code-hmac")
            checkpoint_key = bundle.key("checkpoint")
            checkpoint_signer: Signer
            code_mac: Mac
            if hsm.available:
                checkpoint_signer = hsm.signer(checkpoint_key.label)
                if checkpoint_signer.public_key_der != checkpoint_key.public_key_der:
                    raise ConfigError(
                        f"the HSM key {checkpoint_key.label!r} is not the checkpoint key published in "
                        f"{cfg.key_bundle}; point keys.bundle at this token's ceremony bundle")
                code_mac = hsm.mac(code_key.label)
                if bundle.has_sealing_key and hsm.key_exists(bundle.key("sealing").label):
                    raise ConfigError(
                        f"the service's HSM token holds the sealing key {bundle.key('sealing').label!r}: the running "
                        "service must never be able to open ballots; the sealing key belongs on its own token, whose "
                        "PIN only the tally trustees hold (run the ceremony again)")
            else:  # started while the HSM is away (only with hsm_may_be_away)
                checkpoint_signer = DeferredSigner(checkpoint_key, lambda: hsm.signer(checkpoint_key.label))
                code_mac = DeferredMac(code_key, lambda: hsm.mac(code_key.label))
            storage = open_storage(cfg.storage_url)
        except BaseException:
            hsm.close()
            raise
        notifier = Notifier()
        sequencer = _sequencer(cfg, storage, bundle, checkpoint_signer, notifier) if with_sequencer else None
        health = SignerHealth(storage, sequencer)
        batches_announced = with_sequencer or follow_commits
        waiter = BatchWaiter(notifier) if batches_announced else PollingWaiter()
        ballots = BallotBox(storage, code_mac, notifier, waiter=waiter, signer_healthy=health.healthy,
                            resubmit_window=cfg.voting.resubmit_window_minutes * 60.0,
                            sealing_key=bundle.sealing_point() if bundle.has_sealing_key else None)
        watcher = CommitWatcher(storage, notifier) if follow_commits else None
        return cls(config=cfg, storage=storage, bundle=bundle, hsm=hsm, ballots=ballots, notifier=notifier,
                   health=health, sequencer=sequencer, watcher=watcher, _checkpoint_signer=checkpoint_signer)

    def make_sequencer(self) -> Sequencer:
        """A new sequencer over this service's log (closing the poll drains with one)."""
        if self._checkpoint_signer is None:
            raise ConfigError("this service was opened without its checkpoint key; use Service.open")
        return _sequencer(self.config, self.storage, self.bundle, self._checkpoint_signer, self.notifier)

    def signer_status(self) -> dict:
        """How the sequencer is doing: this process's own, or the heartbeat of another's."""
        return self.health.status()

    def tally_signer(self):
        """The HSM tally key, after checking it is the one the bundle publishes."""
        key = self.bundle.key("tally")
        signer = self.hsm.signer(key.label)
        if signer.public_key_der != key.public_key_der:
            raise ConfigError(f"the HSM key {key.label!r} is not the tally key published in the key bundle "
                              f"{self.bundle.ceremony_id}: a tally it signed would not verify; point keys.bundle "
                              "at this token's ceremony bundle")
        return signer

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
               notifier: Notifier) -> Sequencer:
    return Sequencer(storage, signer, bundle.key("checkpoint").verifier().name, SignerState(cfg.sequencer.state_file),
                     batch_size=cfg.sequencer.batch_size, max_wait=cfg.sequencer.max_wait_ms / 1000,
                     notifier=notifier)
