"""HSM keys a server binds when its HSM appears: so ``serve`` can start while the HSM is away.

A :class:`DeferredSigner` answers what the published key bundle already says (algorithm,
label, public key) and finds its HSM key on first use; a :class:`DeferredMac` likewise.
Until the HSM can be reached every use raises
:class:`~hsm_signer.errors.HsmUnavailableError` (the web answers 503, the sequencer waits),
exactly as during an outage after start-up. When it binds, the HSM key must be the one the
bundle publishes, or every use fails closed with a :class:`~hsm_signer.errors.ConfigError`:
nothing is ever signed with a key the published bundle would not verify.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

from .bundle import KeyEntry
from .errors import ConfigError
from .signer import Mac, Signer


K = TypeVar("K", Signer, Mac)


class _Deferred(Generic[K]):
    def __init__(self, entry: KeyEntry, find: Callable[[], K]):
        self._entry = entry
        self._find: Callable[[], K] = find
        self._bound: K | None = None
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self._entry.label

    def _check(self, key: K) -> None:
        """Raise if ``key`` is not the one the bundle publishes."""

    def bound(self) -> K:
        """The HSM key, found on first use (HsmUnavailableError while the HSM is away)."""
        with self._lock:
            if self._bound is None:
                key = self._find()
                self._check(key)
                self._bound = key
            return self._bound


class DeferredSigner(_Deferred[Signer]):
    """A :class:`~hsm_signer.signer.Signer` whose HSM key is found on first use."""

    @property
    def algorithm(self) -> str:
        return self._entry.algorithm

    @property
    def public_key_der(self) -> bytes:
        return self._entry.public_key_der

    def _check(self, key: Signer) -> None:
        if key.public_key_der != self._entry.public_key_der:
            raise ConfigError(f"the HSM key {self._entry.label!r} is not the {self._entry.purpose} key published "
                              "in the key bundle; point keys.bundle at this token's ceremony bundle")

    def sign(self, message: bytes) -> bytes:
        return self.bound().sign(message)


class DeferredMac(_Deferred[Mac]):
    """A :class:`~hsm_signer.signer.Mac` whose HSM key is found on first use."""

    def mac(self, data: bytes) -> bytes:
        return self.bound().mac(data)

    def mac_many(self, items: list[bytes]) -> list[bytes]:
        key: Mac = self.bound()
        many = getattr(key, "mac_many", None)
        return many(items) if many else [key.mac(item) for item in items]
