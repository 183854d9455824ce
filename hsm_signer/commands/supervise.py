"""``hsm-signer serve``'s default form: the web server and the sequencer as two supervised processes.

The sequencer gets an interpreter of its own: sharing one with the request threads, every
step of a batch waits for the GIL behind them, which lengthens each batch, hence every
receipt, with a slow HSM (bench/results/REPORT.md: "sequencer as a thread" rows). This
small parent process starts both children and watches them:

* the sequencer (``hsm-signer sequencer``) first, so receipts flow as soon as the web
  server answers; if it dies it is started again after a growing pause (1 s, doubling up
  to 30 s, reset after a minute of running), and requests meanwhile get their "receipt
  pending" answer, as during an HSM outage;
* the web server (``hsm-signer serve --sequencer none``: gunicorn, its worker following
  the sequencer's commits through the database); when it exits, the sequencer is
  stopped and ``serve`` exits with the web server's status; when it is killed by a
  signal (``kill -9``) it is started again like the sequencer.

Both children, and gunicorn's worker, die with their parent (``PR_SET_PDEATHSIG``): a
``kill -9`` of the supervisor leaves no process behind to hold the port or the
sequencer's lock, so ``serve`` can simply be started again.

SIGTERM or Ctrl-C stops both (SIGTERM, then SIGKILL after the grace period). Neither
child is a child of gunicorn's master: the master reaps every child it has and forks
workers at any moment, neither of which a supervisor may share with it. Each child is a
fresh interpreter that opens its own PKCS#11 session.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0
STEADY = 60.0
"""A sequencer that ran this long before dying counts as a fresh start (the pause resets)."""
GRACE = 20.0  # more than gunicorn's graceful_timeout (15 s)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Have Linux send ``sig`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    so that ``kill -9`` of a parent leaves no orphan holding the port or the sequencer lock."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))


def _lifeline(parent: int) -> None:
    """In a child, before exec: die with the supervisor, even if it died while we were forked."""
    die_with_parent()
    if os.getppid() != parent:
        os._exit(1)


@dataclass
class _Restart:
    """When a crashed child starts again: after a pause of 1 s, doubling up to 30 s, reset
    once it ran for a minute."""

    began: float
    pause: float = FIRST_PAUSE
    at: float | None = None

    def schedule(self, name: str, status: int | None) -> None:
        if time.monotonic() - self.began >= STEADY:
            self.pause = FIRST_PAUSE
        log.error("%s process exited with status %s; starting it again in %.0f s%s", name, status, self.pause,
                  " (receipts wait meanwhile)" if name == "sequencer" else "")
        self.at = time.monotonic() + self.pause
        self.pause = min(self.pause * 2, LONGEST_PAUSE)

    def started(self) -> None:
        self.began, self.at = time.monotonic(), None


def child_command(config_path: Path, *args: str, module: str = "hsm_signer") -> list[str]:
    """``python -m MODULE --config CFG ARGS``: a child running this program (``module``: see
    :class:`~hsm_signer.commands._common.Program`)."""
    return [sys.executable, "-m", module, "--config", str(Path(config_path).resolve()), *args]


class Supervisor:
    def __init__(self, web: list[str], sequencer: list[str], *, grace: float = GRACE, tick: float = 0.2):
        self.commands = {"sequencer": sequencer, "web server": web}
        self.grace = grace
        self.tick = tick
        self.stopping = threading.Event()
        self.children: dict[str, subprocess.Popen] = {}
        self.sequencer_starts = 0

    def _start(self, name: str) -> subprocess.Popen:
        child = self.children[name] = subprocess.Popen(
            self.commands[name], stdin=subprocess.DEVNULL, preexec_fn=functools.partial(_lifeline, os.getpid()))
        log.info("%s process %d started", name, child.pid)
        return child

    def run(self) -> int:
        """Supervise until the web server exits or a stop is asked; the web server's exit status."""
        previous = {sig: signal.signal(sig, lambda *_: self.stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> int:
        self._start("sequencer")
        self.sequencer_starts = 1
        self._start("web server")
        plans = {name: _Restart(began=time.monotonic()) for name in self.commands}
        while not self.stopping.wait(self.tick):
            for name, child in list(self.children.items()):
                plan = plans[name]
                if plan.at is None and child.poll() is not None:
                    if name == "web server" and child.returncode >= 0:
                        log.info("web server exited with status %s; stopping the sequencer", child.returncode)
                        return child.returncode
                    # A crash (the sequencer for any reason, the web server killed by a signal).
                    plan.schedule(name, child.returncode)
                if plan.at is not None and time.monotonic() >= plan.at:
                    self._start(name)
                    plan.started()
                    if name == "sequencer":
                        self.sequencer_starts += 1
        return 0

    def _stop_all(self) -> None:
        self.stopping.set()
        running = [(name, child) for name, child in self.children.items() if child.poll() is None]
        for _, child in running:
            child.terminate()
        deadline = time.monotonic() + self.grace
        for name, child in running:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s process %d did not stop within %.0f s; killing it", name, child.pid, self.grace)
                child.kill()
                child.wait()
