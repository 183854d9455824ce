"""``hsm-signer tally ELECTION``: count the closed election's final log and have the HSM sign the tally."""

from __future__ import annotations

import json
import sys

from ..lifecycle import tally_election
from ..tally import format_tally, tally_summary
from ._common import progress_printer
from ._service import open_service


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tally", help="count a closed election and sign the tally with the HSM tally key",
        description="Count every entry of the final signed tree of a closed election (online and postal "
                    "separately and in total) and sign the counts with the tally key. Tallying again prints "
                    "the stored tally when the result is the same and refuses a different result.")
    parser.add_argument("election")
    parser.add_argument("--json", action="store_true", help="print the tally as JSON (with the signed note)")
    parser.set_defaults(func=run)


def run(args) -> int:
    service = open_service(args)
    try:
        counting = progress_printer("counting entries", stream=sys.stderr)
        signed = tally_election(service, args.election, progress=counting)
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
