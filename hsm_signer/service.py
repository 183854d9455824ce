"""The composition root: builds the running service's parts from one :class:`Config`.

Opens the HSM, the storage and the ceremony's key bundle, checks that the HSM holds the
keys the bundle publishes (same public keys), and wires the ballot box to the sequencer.
Web processes and CLI commands get everything they need from a :class:`Service`; nothing
else reads configuration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from . import config as config_mod
from .ballots import BallotBox
from .bundle import KeyBundle
from .deferred import DeferredMac, DeferredSigner
from .errors import ConfigError
from .hsm import open_hsm
from .sequencer import Notifier, Sequencer, SignerState, read_heartbeat
from .storage import Storage, open_storage
from .watch import CommitWatcher

log = logging.getLogger(__name__)


@dataclass
class Service:
    config: config_mod.Config
    storage: Storage
    bundle: KeyBundle
    hsm: object
    ballots: BallotBox
    notifier: Notifier
    sequencer: Sequencer | None = None
    watcher: CommitWatcher | None = None
    _checkpoint_signer: object = field(default=None, repr=False)
    _status_cache: bool = field(default=True, repr=False)
    _status_checked: float = field(default=0.0, repr=False)

    @classmethod
    def open(cls, cfg: config_mod.Config, *, with_sequencer: bool = False,
             hsm_may_be_away: bool = False) -> "Service":
        """Open every part. ``hsm_may_be_away`` (servers): start even while the HSM cannot be
        reached; its keys are then found, and checked against the bundle, when it appears
        (:mod:`.deferred`), and until then casting answers 503 and nothing is signed."""
        bundle = KeyBundle.load(cfg.key_bundle)
        hsm = open_hsm(cfg.hsm, may_be_away=hsm_may_be_away)
        storage = None
        try:
            code_key = bundle.key("code-hmac")
            checkpoint_key = bundle.key("checkpoint")
            if hsm.available:
                checkpoint_signer = hsm.signer(checkpoint_key.label)
                if checkpoint_signer.public_key_der != checkpoint_key.public_key_der:
                    raise ConfigError(
                        f"the HSM key {checkpoint_key.label!r} is not the checkpoint key published in "
                        f"{cfg.key_bundle}; point keys.bundle at this token's ceremony bundle")
                code_mac = hsm.mac(code_key.label)
            else:  # started while the HSM is away (only with hsm_may_be_away)
                checkpoint_signer = DeferredSigner(checkpoint_key, lambda: hsm.signer(checkpoint_key.label))
                code_mac = DeferredMac(code_key, lambda: hsm.mac(code_key.label))
            storage = open_storage(cfg.storage_url)
        except BaseException:
            hsm.close()
            raise
        notifier = Notifier()
        service = cls(config=cfg, storage=storage, bundle=bundle, hsm=hsm,
                      ballots=BallotBox(storage, code_mac, notifier,
                                        resubmit_window=cfg.voting.resubmit_window_minutes * 60.0),
                      notifier=notifier, _checkpoint_signer=checkpoint_signer)
        service.ballots.signer_healthy = service.signer_healthy
        if with_sequencer:
            service.sequencer = service.make_sequencer()
        return service

    def make_sequencer(self) -> Sequencer:
        key = self.bundle.key("checkpoint")
        return Sequencer(self.storage, self._checkpoint_signer, key.note_key_name,
                         SignerState(self.config.sequencer.state_file),
                         batch_size=self.config.sequencer.batch_size,
                         max_wait=self.config.sequencer.max_wait_ms / 1000, notifier=self.notifier)

    def signer_status(self) -> dict:
        """How the sequencer is doing: this process's own, or the heartbeat of another's."""
        if self.sequencer is not None:
            return {"mode": "in-process", "healthy": self.sequencer.healthy, "error": self.sequencer.last_error}
        beat = read_heartbeat(self.storage)
        if beat is None:
            return {"mode": "external", "healthy": None, "error": "no sequencer has reported yet"}
        if not beat["fresh"]:
            return {"mode": "external", "healthy": False, "error": "the sequencer has not reported for a while"}
        return {"mode": "external", "healthy": bool(beat["healthy"]), "error": beat.get("error")}

    def signer_healthy(self) -> bool:
        """False while the sequencer is known not to sign (HSM down, tampering refused, gone)."""
        now = time.monotonic()
        if now - self._status_checked > 0.5:  # waiters ask often; the heartbeat moves once a second
            self._status_cache = self.signer_status()["healthy"] is not False
            self._status_checked = now
        return self._status_cache

    def tally_signer(self):
        """The HSM tally key, after checking it is the one the bundle publishes."""
        key = self.bundle.key("tally")
        signer = self.hsm.signer(key.label)
        if signer.public_key_der != key.public_key_der:
            raise ConfigError(f"the HSM key {key.label!r} is not the tally key published in the key bundle "
                              f"{self.bundle.ceremony_id}: a tally it signed would not verify; point keys.bundle "
                              "at this token's ceremony bundle")
        return signer

    def watch_commits(self) -> CommitWatcher:
        """Wake this process's receipt waiters on batches a sequencer in another process commits."""
        if self.watcher is None:
            self.watcher = CommitWatcher(self.storage, self.notifier).start()
        return self.watcher

    def start(self) -> "Service":
        if self.sequencer is not None:
            self.sequencer.start()
        return self

    def close(self) -> None:
        self.ballots.close()
        if self.watcher is not None:
            self.watcher.stop()
        if self.sequencer is not None:
            self.sequencer.stop()
        self.storage.close()
        self.hsm.close()
