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
  stopped and ``serve`` exits with the web server's status.

SIGTERM or Ctrl-C stops both (SIGTERM, then SIGKILL after the grace period). Neither
child is a child of gunicorn's master: the master reaps every child it has and forks
workers at any moment, neither of which a supervisor may share with it. Each child is a
fresh interpreter that opens its own PKCS#11 session.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

FIRST_PAUSE, LONGEST_PAUSE = 1.0, 30.0
STEADY = 60.0
"""A sequencer that ran this long before dying counts as a fresh start (the pause resets)."""
CHILD_MODULE = "hsm_signer"
"""What ``python -m`` runs in the children (the benchmarks' slow-HSM wrapper replaces it)."""
GRACE = 20.0  # more than gunicorn's graceful_timeout (15 s)


def child_command(config_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", CHILD_MODULE, "--config", str(Path(config_path).resolve()), *args]


class Supervisor:
    def __init__(self, web: list[str], sequencer: list[str], *, grace: float = GRACE, tick: float = 0.2):
        self.commands = {"sequencer": sequencer, "web server": web}
        self.grace = grace
        self.tick = tick
        self.stopping = threading.Event()
        self.children: dict[str, subprocess.Popen] = {}
        self.sequencer_starts = 0

    def _start(self, name: str) -> subprocess.Popen:
        child = self.children[name] = subprocess.Popen(self.commands[name], stdin=subprocess.DEVNULL)
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
        sequencer, began = self._start("sequencer"), time.monotonic()
        self.sequencer_starts = 1
        web = self._start("web server")
        pause, restart_at = FIRST_PAUSE, None
        while not self.stopping.wait(self.tick):
            if web.poll() is not None:
                log.info("web server exited with status %s; stopping the sequencer", web.returncode)
                return web.returncode
            if restart_at is None and sequencer.poll() is not None:
                if time.monotonic() - began >= STEADY:
                    pause = FIRST_PAUSE
                log.error("sequencer process exited with status %s; starting it again in %.0f s "
                          "(receipts wait meanwhile)", sequencer.returncode, pause)
                restart_at = time.monotonic() + pause
                pause = min(pause * 2, LONGEST_PAUSE)
            if restart_at is not None and time.monotonic() >= restart_at:
                sequencer, began, restart_at = self._start("sequencer"), time.monotonic(), None
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
