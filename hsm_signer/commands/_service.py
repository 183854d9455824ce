"""Opening the service for the officials' commands that need the HSM and the database.

The service (and with it PKCS#11) is imported inside these functions, when such a command
runs: the console script imports every command module to build its ``--help``, and
``hsm-signer verify`` / ``audit`` must start with nothing but ``cryptography`` installed
(the ``service`` extra brings the rest; see pyproject.toml).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._common import load_config, program_of

if TYPE_CHECKING:
    from ..service import Service


def open_service(args: argparse.Namespace, *, with_sequencer: bool = False,
                 follow_commits: bool = False, hsm_may_be_away: bool = False) -> Service:
    """The service of the config in ``args`` (see :meth:`Service.open <hsm_signer.service.Service.open>`)."""
    from ..service import Service
    return Service.open(load_config(args), with_sequencer=with_sequencer, follow_commits=follow_commits,
                        hsm_may_be_away=hsm_may_be_away, keys=program_of(args).keys)
