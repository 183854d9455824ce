"""``python -m bench.slow_server ARGS``: the ``hsm-signer`` command with a slow HSM (benchmarks only).

Runs the ``hsm-signer`` command line unchanged (``--config CFG serve --port N``, or
``--config CFG sequencer``) with one difference in this process: every sequencer the
service makes signs through :class:`bench.slowhsm.SlowSigner`, which adds
``$HSM_SIGNER_BENCH_SLOW_HSM_MS`` milliseconds (default 100: a USB-class HSM at ~10
signatures/s) to each checkpoint signature. With ``HSM_SIGNER_BENCH_SLOW_HSM_EXCLUSIVE=1``
the delay is spent holding the process's PKCS#11 lock, as a device that does one thing
at a time would (the code HMACs of this process then wait behind each signature).
The key, the signatures and everything else are the product's own.

These environment variables are read here and nowhere else; the product has no slow mode.
Gunicorn forks its worker from this process, so the worker inherits the change; the
sequencer process that ``serve`` starts runs through this module too. For the exclusive
device, the PKCS#11 lock of every process of the server becomes one lock across them
(:class:`bench.slowhsm.DeviceLock`): a device does one thing at a time, whichever
process asks.
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


def install(delay_s: float, exclusive: bool = False) -> None:
    """Make :meth:`Service.make_sequencer` hand out sequencers with a slow signer."""
    from hsm_signer.service import Service

    from .slowhsm import SlowSigner

    from hsm_signer.commands import supervise
    supervise.CHILD_MODULE = "bench.slow_server"  # serve's sequencer process is slow too
    if exclusive:
        from hsm_signer.hsm import token

        from .slowhsm import DeviceLock
        token.PKCS11_LOCK = DeviceLock(os.environ.get(DEVICE_LOCK_ENV_VAR) or _default_device_lock())

    original = Service.make_sequencer

    def make_sequencer(self):
        sequencer = original(self)
        inner = sequencer.signer
        sequencer.signer = SlowSigner.around_hsm(inner, delay_s) if exclusive else SlowSigner(inner, delay_s)
        return sequencer

    Service.make_sequencer = make_sequencer


def main(argv: list[str] | None = None) -> int:
    delay_ms = float(os.environ.get(ENV_VAR, DEFAULT_MS))
    install(delay_ms / 1000, exclusive=os.environ.get(EXCLUSIVE_ENV_VAR) == "1")
    from hsm_signer.cli import main as hsm_signer_main
    return hsm_signer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
