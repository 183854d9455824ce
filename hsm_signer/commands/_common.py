"""Small helpers shared by the command modules: config, service, progress on stderr."""

from __future__ import annotations

import sys
import time
from typing import Callable

from .. import config as config_mod


def load_config(args) -> config_mod.Config:
    return config_mod.load(args.config)


def open_service(args, *, with_sequencer: bool = False):
    from ..service import Service
    return Service.open(load_config(args), with_sequencer=with_sequencer)


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
