"""Starting and stopping the servers under test (on 127.0.0.1 only), and profiling them.

Each server runs in its own session (process group), so stopping it stops its gunicorn
workers too, and nothing else. Its output goes to a log file in the scratch directory.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process started with ``command``.

    Ready once ``GET health_path`` on ``port`` answers 200, or, for a process that serves
    no HTTP (``port`` None), once ``ready_text`` appears in its log.
    """

    def __init__(self, name: str, command: list[str], port: int | None, log_path: Path, env: dict | None = None,
                 health_path: str = "/api/v1/health", ready_text: str | None = None):
        self.name = name
        self.command = command
        self.port = port
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.health_path = health_path
        self.ready_text = ready_text
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Server":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{self.health_path}"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}; "
                                   f"its log ({self.log_path}) ends:\n{self.log_tail()}")
            if self.port is None:
                if self.ready_text and self.ready_text in self.log_path.read_text(errors="replace"):
                    return self
            else:
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        if answer.status == 200:
                            return self
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer {url} within {timeout:.0f} s; log:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _descendants(self) -> list[tuple[int, str, bool]]:
        """(pid, command line, has children) of every process below the first one."""
        if self.process is None:
            return []
        found: list[tuple[int, str]] = []
        parents: set[int] = set()
        frontier = [self.process.pid]
        while frontier:
            parent = frontier.pop()
            listing = subprocess.run(["pgrep", "-a", "-P", str(parent)], capture_output=True, text=True).stdout
            for line in listing.splitlines():
                pid, _, command = line.partition(" ")
                if pid.isdigit():
                    parents.add(parent)
                    found.append((int(pid), command.strip()))
                    frontier.append(int(pid))
        return [(pid, command, pid in parents) for pid, command in found]

    def worker_pids(self) -> list[int]:
        """The server's request-serving processes: gunicorn's workers, else the process itself.

        Workers are the leaves of the process tree (gunicorn's master has children; with
        ``hsm-signer serve``'s supervisor in between, the worker is a grandchild), other than
        the sequencer process ``serve`` starts beside the web server: see :meth:`sequencer_pids`.
        """
        if self.process is None:
            return []
        workers = [pid for pid, command, parent in self._descendants() if not parent and not _is_sequencer(command)]
        return workers or [self.process.pid]

    def sequencer_pids(self) -> list[int]:
        """The sequencer processes the server started (``hsm-signer serve``'s child), if any."""
        return [pid for pid, command, _ in self._descendants() if _is_sequencer(command)]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        self.process = None

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class ServerGroup:
    """Several processes started in order and stopped in reverse (a sequencer, then the web)."""

    def __init__(self, servers: list[Server]):
        self.servers = servers

    @property
    def port(self) -> int | None:
        return next((s.port for s in reversed(self.servers) if s.port is not None), None)

    def worker_pids(self) -> list[int]:
        return [pid for server in self.servers if server.port is not None for pid in server.worker_pids()]

    def sequencer_pids(self) -> list[int]:
        """Sequencers started by the web servers, and the group's own sequencer processes (no port)."""
        pids = []
        for server in self.servers:
            if server.port is not None:
                pids += server.sequencer_pids()
            elif server.process is not None:
                pids.append(server.process.pid)
        return pids

    def start(self) -> "ServerGroup":
        started = []
        try:
            for server in self.servers:
                server.start()
                started.append(server)
        except BaseException:
            for server in reversed(started):
                server.stop()
            raise
        return self

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def __enter__(self) -> "ServerGroup":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _is_sequencer(command: str) -> bool:
    """``python -m hsm_signer --config CFG sequencer`` (or ``bench.slow_server``), as ``serve`` starts it."""
    return command.endswith(" sequencer")


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


# --- profiling ------------------------------------------------------------------------------

def _py_spy() -> str | None:
    """py-spy on PATH, else beside this interpreter (a virtualenv run as ``.venv/bin/python``
    without activating it has the ``bench`` extra's py-spy there, not on PATH)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)


def py_spy_available() -> bool:
    return _py_spy() is not None


def profile(pid: int, seconds: float, out: Path, *, gil_only: bool) -> subprocess.Popen:
    """Start py-spy sampling ``pid`` (all its threads) for ``seconds``; returns the running py-spy.

    ``gil_only``: sample only the thread holding the GIL (where the CPU goes); otherwise
    sample every thread, idle ones included (where requests wait).
    """
    command = [_py_spy() or "py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "200",
               "--format", "raw", "--output", str(out), "--nonblocking"]
    command += ["--gil"] if gil_only else ["--idle"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize_profile(raw: Path, top: int = 12) -> dict:
    """Where the samples are, from py-spy's raw (collapsed) output.

    ``own``: the innermost frames (where a thread computes or waits); ``project``: the
    project's own frames (``hsm_signer/``, ``web/``, ``bench/``) by inclusive share.
    """
    own: collections.Counter = collections.Counter()
    project: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(frame) for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if any(f"({package}/" in frame for package in ("hsm_signer", "web", "bench")):
                project[frame] += n
    if not total:
        return {"samples": 0, "own": [], "project": []}

    def share(counter):
        return [{"frame": frame, "percent": round(100 * n / total, 1)} for frame, n in counter.most_common(top)]
    return {"samples": total, "own": share(own), "project": share(project)}


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` with the path cut to what follows site-packages or the repo."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def dump(data: dict) -> str:
    return json.dumps(data, indent=1)
