"""Small helpers shared by the command modules: config, command hints, progress on stderr.

Nothing here opens the service (that is :mod:`._service`): ``verify`` and ``audit`` use these
helpers with nothing but ``cryptography`` installed.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import config as config_mod


@dataclass(frozen=True)
class Program:
    """What the command line runs with, passed in by whoever starts it (:func:`hsm_signer.cli.main`).

    ``module``: what ``python -m`` runs to start this program again in a child process
    (``serve``'s sequencer and web server). ``keys``: how services get their signers and
    code MAC from the HSM and the key bundle (None: the HSM's own keys,
    :func:`hsm_signer.service.hsm_keys`). The console script uses the defaults; a benchmark
    passes a slow signer here (``bench/slow_server.py``) instead of patching anything.
    """

    module: str = "hsm_signer"
    keys: Callable[[Any, Any], Any] | None = None


#: The console script's program: ``python -m hsm_signer`` children, the HSM's own keys.
DEFAULT_PROGRAM = Program()


def program_of(args) -> Program:
    """The :class:`Program` the command line was started with (the defaults if none was given)."""
    return getattr(args, "program", None) or DEFAULT_PROGRAM


def load_config(args) -> config_mod.Config:
    return config_mod.load(args.config)


def command_hint() -> str:
    """How to run ``hsm-signer`` again from a shell, for the hints commands print.

    The console script beside this interpreter (the venv's ``bin/``) unless that very script
    is what ``PATH`` finds anyway; ``python -m hsm_signer`` where no script is installed.
    """
    script = Path(sys.executable).with_name("hsm-signer")
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m hsm_signer"
    found = shutil.which("hsm-signer")
    if found and Path(found).resolve() == script.resolve():
        return "hsm-signer"
    return shlex.quote(str(script))


def stage_progress(prefix: str = "", stream=None) -> Callable[[str, int, int], None]:
    """A ``(stage, done, total)`` callback: one :func:`progress_printer` per stage."""
    printers: dict[str, Callable[[int, int], None]] = {}

    def show(stage: str, done: int, total: int) -> None:
        printers.setdefault(stage, progress_printer(prefix + stage, stream=stream or sys.stderr))(done, total)
    return show


def progress_printer(what: str, stream=None) -> Callable[[int, int], None]:
    """A ``(done, total)`` callback printing at most a few lines a second (to stderr by default)."""
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 0.5:
            last[0] = now
            print(f"{what}: {done:,}/{total:,} ({100 * done // max(total, 1)}%)",
                  file=stream or sys.stderr, flush=True)
    return show
