"""``python -m bench.slow_server ARGS``: the ``hsm-signer`` command with a slow HSM (benchmarks only).

Runs the ``hsm-signer`` command line unchanged (``--config CFG serve --port N``, or
``--config CFG sequencer``) with one difference, passed in as a
:class:`~hsm_signer.commands._common.Program`: the services it opens sign checkpoints
through :class:`bench.slowhsm.SlowSigner`, which adds ``$HSM_SIGNER_BENCH_SLOW_HSM_MS``
milliseconds (default 100: a USB-class HSM at ~10 signatures/s) to each checkpoint
signature, and the processes ``serve`` starts run this module too. With
``HSM_SIGNER_BENCH_SLOW_HSM_EXCLUSIVE=1`` the delay is spent holding a device lock that
every process of the server shares (:class:`bench.slowhsm.DeviceLock`), as a device that
does one thing at a time would: the code HMACs, which take that lock too, then wait
behind each signature, whichever process asks. The keys, the signatures and everything
else are the product's own; nothing of the product is patched.

These environment variables are read here and nowhere else; the product has no slow mode.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "HSM_SIGNER_BENCH_SLOW_HSM_MS"
EXCLUSIVE_ENV_VAR = "HSM_SIGNER_BENCH_SLOW_HSM_EXCLUSIVE"
DEVICE_LOCK_ENV_VAR = "HSM_SIGNER_BENCH_DEVICE_LOCK"
DEFAULT_MS = 100.0


def _default_device_lock() -> str:
    """Beside the server's config file: one lock file per benchmark server."""
    config = os.environ.get("HSM_SIGNER_CONFIG")
    if not config:
        raise SystemExit("the exclusive slow HSM needs HSM_SIGNER_CONFIG or HSM_SIGNER_BENCH_DEVICE_LOCK")
    return os.path.join(os.path.dirname(os.path.abspath(config)), "bench-device.lock")


def slow_keys(delay_s: float, exclusive: bool = False):
    """A key factory for :meth:`Service.open <hsm_signer.service.Service.open>`: the HSM's
    keys, with the checkpoint signer slowed down (and, for an exclusive device, the code
    MAC queued behind it on the shared device lock)."""
    from hsm_signer.service import ServiceKeys, hsm_keys

    from .slowhsm import DeviceLock, LockedMac, SlowSigner

    def keys(hsm, bundle) -> ServiceKeys:
        own = hsm_keys(hsm, bundle)
        if not exclusive:
            return ServiceKeys(SlowSigner(own.checkpoint, delay_s), own.tally, own.code_mac)
        device = DeviceLock(os.environ.get(DEVICE_LOCK_ENV_VAR) or _default_device_lock())
        return ServiceKeys(SlowSigner(own.checkpoint, delay_s, hold=device), own.tally,
                           LockedMac(own.code_mac, device))
    return keys


def main(argv: list[str] | None = None) -> int:
    from hsm_signer.cli import main as hsm_signer_main
    from hsm_signer.commands._common import Program

    delay_ms = float(os.environ.get(ENV_VAR, DEFAULT_MS))
    keys = slow_keys(delay_ms / 1000, exclusive=os.environ.get(EXCLUSIVE_ENV_VAR) == "1")
    return hsm_signer_main(argv, program=Program(module="bench.slow_server", keys=keys))


if __name__ == "__main__":
    sys.exit(main())
