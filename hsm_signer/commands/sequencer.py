"""``hsm-signer sequencer``: the signer as its own process, for several web workers.

Run exactly one per database; a lock file beside the signer's state file enforces it.
Stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import signal
import threading

from ._service import open_service

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser("sequencer", help="run the sequencer/signer as its own process")
    parser.set_defaults(func=run)


def run(args) -> int:
    service = open_service(args, hsm_may_be_away=True)  # signs from the moment the HSM appears
    sequencer = service.make_sequencer()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sequencer.start()
    log.info("sequencer running (batch size %d, state file %s)", sequencer.batch_size, sequencer.state.path)
    try:
        last = 0
        while not stop.wait(5.0):
            if sequencer.sequenced != last:
                log.info("sequenced %d entries with %d signatures", sequencer.sequenced, sequencer.signatures)
                last = sequencer.sequenced
            if sequencer.last_error:
                log.error("sequencer: %s", sequencer.last_error)
    except KeyboardInterrupt:
        pass
    finally:
        sequencer.stop()
        service.close()
    return 0
