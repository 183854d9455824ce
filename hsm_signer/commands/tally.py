"""``hsm-signer tally ELECTION``: open the sealed ballots of a closed election (with the tally
trustees' shares), count the final log and have the HSM sign the tally."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..lifecycle import tally_election
from ..tally import format_tally, tally_summary
from ._common import progress_printer
from ._service import open_service

if TYPE_CHECKING:
    from ..election import Election
    from ..service import Service


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tally", help="open the sealed ballots of a closed election, count them and sign the tally",
        description="Open every sealed ballot of the closed election through the sealing token, which m of the "
                    "tally trustees activate (their share files in [tally.sealing.pin], or typed), count the final "
                    "signed tree (online and postal separately and in total; ballots that do not open to a valid "
                    "vote as invalid) and sign the counts with the tally key. The openings are stored as they are "
                    "made: an interrupted run carries on where it stopped. Tallying again prints the stored tally "
                    "when the result is the same and refuses a different result.")
    parser.add_argument("election")
    parser.add_argument("--json", action="store_true", help="print the tally as JSON (with the signed note)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes opening ballots in parallel (default [tally.sealing] workers, else one per CPU)")
    parser.set_defaults(func=run)


def box_opener(service: "Service", workers: int | None) -> Callable[["Election", int], None] | None:
    """Opens a sealed election's remaining entries through the sealing token ``[tally.sealing]``
    names; the trustees' shares are read (or typed) only when there is something to open."""
    settings = service.config.sealing
    if settings is None:
        return None

    def open_box(election: "Election", size: int) -> None:
        from ..bundle import SEALING
        from ..hsm.shares import SharePin
        from ..unsealing import SealingAccess, open_box as open_entries
        key = service.bundle.key(SEALING)
        if not settings.pin.share_files:
            print("The tally trustees type their shares of the sealing token's PIN.", file=sys.stderr)
        pin = SharePin(share_files=settings.pin.share_files).get_pin()
        conf = service.config.hsm.softhsm_conf
        access = SealingAccess(module=settings.module or service.config.hsm.module, token_label=settings.token_label,
                               key_label=key.label, public_point=key.sealing_point, pin=pin,
                               softhsm_conf=str(conf) if conf else os.environ.get("SOFTHSM2_CONF"))
        open_entries(service.storage, election, size, access, workers=workers or settings.worker_count,
                     progress=progress_printer("opening sealed ballots", stream=sys.stderr))
    return open_box


def run(args) -> int:
    service = open_service(args)
    try:
        signed = tally_election(service, args.election, progress=progress_printer("counting entries", stream=sys.stderr),
                                open_box=box_opener(service, args.workers))
        election = service.storage.get_election(args.election).election
        summary = tally_summary(signed.note, service.bundle, election)
    finally:
        service.close()
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    state = "signed the tally" if signed.created else "the tally was already signed with this result; unchanged"
    print(f"election {args.election!r}: {state} (key {summary['key_name']})")
    for line in format_tally(signed.tally, election):
        print(line)
    print()
    print(signed.note, end="")
    return 0
