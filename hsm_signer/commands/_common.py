"""Small helpers shared by the command modules: config, service, progress on stderr."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from .. import config as config_mod


def load_config(args) -> config_mod.Config:
    return config_mod.load(args.config)


def open_service(args, *, with_sequencer: bool = False):
    from ..service import Service
    return Service.open(load_config(args), with_sequencer=with_sequencer)


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


def start_own_sequencer(service):
    """Start a sequencer in this process unless another one already runs for this log.

    Returns the sequencer, or None when another process signs (waiters then poll).
    """
    from ..sequencer import SequencerBusyError
    sequencer = service.make_sequencer()
    try:
        sequencer.start()
    except SequencerBusyError:
        return None
    service.sequencer = sequencer
    return sequencer
