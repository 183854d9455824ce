"""Opening the service for the officials' commands that need the HSM and the database.

The service (and with it PKCS#11) is imported inside these functions, when such a command
runs: the console script imports every command module to build its ``--help``, and
``hsm-signer verify`` / ``audit`` must start with nothing but ``cryptography`` installed
(the ``service`` extra brings the rest; see pyproject.toml).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..sequencer import Sequencer, SequencerBusyError
from ._common import load_config

if TYPE_CHECKING:
    from ..service import Service


def open_service(args: argparse.Namespace, *, with_sequencer: bool = False,
                 hsm_may_be_away: bool = False) -> Service:
    from ..service import Service
    return Service.open(load_config(args), with_sequencer=with_sequencer, hsm_may_be_away=hsm_may_be_away)


def start_own_sequencer(service: Service) -> Sequencer | None:
    """Start a sequencer in this process unless another one already runs for this log.

    Returns the sequencer, or None when another process signs (waiters then poll).
    """
    sequencer = service.make_sequencer()
    try:
        sequencer.start()
    except SequencerBusyError:
        return None
    service.sequencer = sequencer
    return sequencer
