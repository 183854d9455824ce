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
Gunicorn forks its worker from this process, so the worker inherits the change.
"""

from __future__ import annotations

import os
import sys

ENV_VAR = "HSM_SIGNER_BENCH_SLOW_HSM_MS"
EXCLUSIVE_ENV_VAR = "HSM_SIGNER_BENCH_SLOW_HSM_EXCLUSIVE"
DEFAULT_MS = 100.0


def install(delay_s: float, exclusive: bool = False) -> None:
    """Make :meth:`Service.make_sequencer` hand out sequencers with a slow signer."""
    from hsm_signer.service import Service

    from .slowhsm import SlowSigner

    original = Service.make_sequencer

    def make_sequencer(self):
        sequencer = original(self)
        inner = sequencer.signer
        sequencer.signer = SlowSigner.around_hsm(inner, delay_s) if exclusive else SlowSigner(inner, delay_s)
        return sequencer

    Service.make_sequencer = make_sequencer


def main(argv: list[str] | None = None) -> int:
    from . import whatif

    delay_ms = float(os.environ.get(ENV_VAR, DEFAULT_MS))
    install(delay_ms / 1000, exclusive=os.environ.get(EXCLUSIVE_ENV_VAR) == "1")
    whatif.install_from_env()  # only for "what if" runs; see bench/whatif.py
    from hsm_signer.cli import main as hsm_signer_main
    return hsm_signer_main(argv)


if __name__ == "__main__":
    sys.exit(main())
