"""A slow HSM, for benchmarks only: a :class:`~hsm_signer.signer.Signer` that takes longer.

Real HSMs are far slower than SoftHSM: a USB-attached HSM manages about ten signatures a
second. :class:`SlowSigner` wraps any signer and adds a fixed delay to every signature
(100 ms by default, i.e. ~10 signatures/s), so a benchmark can show whether the service
still keeps up. It signs with the wrapped key, so every signature stays real and
verifiable.

Two models of "slow", both measured by the benchmarks:

* ``SlowSigner(signer)`` — the signature takes 100 ms more; nothing else waits for it
  (the HSM, or a second one, still answers the voting-code HMACs meanwhile);
* ``SlowSigner.around_hsm(signer)`` — the delay is spent *holding the process's PKCS#11
  lock* (:data:`hsm_signer.hsm.PKCS11_LOCK`), as a device that does one thing at a time
  would: every other PKCS#11 call of that process (the code HMACs, in a process that also
  serves requests) waits behind the signature. Across processes the same is done with a
  :class:`DeviceLock` held by the slow signer and by a :class:`LockedMac`
  (``bench/slow_server.py``).

This module is never imported by the product; a signer from here must never sign
anything published by an election.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time

USB_HSM_DELAY = 0.100
"""Seconds added per signature: a USB-class HSM (~10 signatures/s)."""


class SlowSigner:
    """``inner`` with ``delay`` seconds added to every :meth:`sign` (benchmarks only)."""

    def __init__(self, inner, delay: float = USB_HSM_DELAY, *, hold=None):
        self._inner = inner
        self.delay = delay
        self._hold = hold  # a lock held through the delay and the signature, or None
        self.signatures = 0

    @classmethod
    def around_hsm(cls, inner, delay: float = USB_HSM_DELAY) -> "SlowSigner":
        """Wrap an HSM signer: the delay holds the PKCS#11 lock (as installed now), like a slow device."""
        from hsm_signer.hsm import token
        return cls(inner, delay, hold=token.PKCS11_LOCK)

    @property
    def algorithm(self) -> str:
        return self._inner.algorithm

    @property
    def key_id(self) -> str:
        return self._inner.key_id

    @property
    def public_key_der(self) -> bytes:
        return self._inner.public_key_der

    def sign(self, message: bytes) -> bytes:
        with self._hold if self._hold is not None else contextlib.nullcontext():
            time.sleep(self.delay)
            signature = self._inner.sign(message)
        self.signatures += 1
        return signature

    def __repr__(self) -> str:
        return f"SlowSigner({self._inner!r}, delay={self.delay})"


class LockedMac:
    """``inner`` (a :class:`~hsm_signer.signer.Mac`) used only while holding ``hold``: with a
    :class:`DeviceLock`, code HMACs wait behind a slow signature, as on a one-at-a-time device."""

    def __init__(self, inner, hold):
        self._inner = inner
        self._hold = hold

    @property
    def key_id(self) -> str:
        return self._inner.key_id

    def mac(self, data: bytes) -> bytes:
        with self._hold:
            return self._inner.mac(data)

    def mac_many(self, items: list[bytes]) -> list[bytes]:
        with self._hold:
            many = getattr(self._inner, "mac_many", None)
            return many(items) if many else [self._inner.mac(item) for item in items]


class DeviceLock:
    """A stand-in for the PKCS#11 lock held across processes: a device that does one thing at a time.

    Re-entrant within a thread like the product's lock; the outermost hold also takes an
    ``flock`` on a file shared by every process of one server. The file is opened per
    process (a descriptor inherited over fork() would share its lock with the parent).
    """

    def __init__(self, path: str):
        self.path = path
        self._rlock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> "DeviceLock":
        self._rlock.acquire()
        self._depth += 1
        if self._depth == 1:
            if self._pid != os.getpid():
                self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._rlock.release()
