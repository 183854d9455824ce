"""``hsm-signer audit RECORD_DIR [--receipts DIR] [--keys BUNDLE]``: check an election record offline.

Needs no configuration, no database and no HSM. Exit status 0 when every check passes,
1 naming the first failure (cli.py turns VerificationError into status 1).
"""

from __future__ import annotations

import sys
import time

from ..audit import audit_record, receipt_files
from ..bundle import KeyBundle
from ..tally import format_tally
from ._common import stage_progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "audit", help="audit an exported election record (offline, no database, no HSM)",
        description="Check the manifest, every checkpoint signature, that the entries hash to the final "
                    "checkpoint, that every checkpoint is consistent with it, the recount against the signed "
                    "tally, the tally signature and binding, and optionally voters' receipts.")
    parser.add_argument("record_dir", metavar="RECORD_DIR")
    parser.add_argument("--receipts", metavar="DIR", help="a directory of receipt JSON files to check as well")
    parser.add_argument("--keys", metavar="BUNDLE",
                        help="the ceremony's published key bundle (directory or keys.json) to trust instead of "
                             "the record's own copy; the copy must be identical")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the result")
    parser.set_defaults(func=run)


def run(args) -> int:
    trusted = KeyBundle.load(args.keys) if args.keys else None
    receipts = receipt_files(args.receipts) if args.receipts else []
    print(f"audit of the election record {args.record_dir}")
    started = time.monotonic()
    result = audit_record(args.record_dir, receipts=receipts, trusted_bundle=trusted,
                          report=None if args.quiet else print, progress=None if args.quiet else stage_progress())
    elapsed = time.monotonic() - started
    print(f"PASS: election {result.election.id}: {result.tree_size:,} entries, {result.checkpoints:,} checkpoints, "
          f"{result.receipts:,} receipts; the signed tally is the count of this log ({elapsed:.1f} s)")
    if not args.quiet:
        for line in format_tally(result.tally, result.election):
            print(line)
    if trusted is None:
        print("note: keys were taken from the record itself; compare the fingerprints above with the key "
              "ceremony's publication, or pass --keys with the published bundle", file=sys.stderr)
    return 0
