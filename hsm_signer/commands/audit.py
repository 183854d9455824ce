"""``hsm-signer audit RECORD_DIR [--receipts DIR] [--keys BUNDLE]``: check an election record offline.

Needs no configuration, no database and no HSM. Exit status 0 when every check passes,
1 naming the first failure (cli.py turns VerificationError into status 1), 2 when it
cannot run (a record path that is not a directory).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..audit import audit_record, receipt_files
from ..bundle import KeyBundle
from ..errors import ConfigError, VerificationError
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
    parser.add_argument("--json", action="store_true", help="print the result as JSON (fields in docs/AUDIT.md)")
    parser.set_defaults(func=run)


def run(args) -> int:
    if not Path(args.record_dir).is_dir():
        raise ConfigError(f"{args.record_dir} is not a directory; give the path of an exported election record "
                          "(`hsm-signer record export`)")
    trusted = KeyBundle.load(args.keys) if args.keys else None
    receipts = receipt_files(args.receipts) if args.receipts else []
    quiet = args.quiet or args.json
    if not quiet:
        print(f"audit of the election record {args.record_dir}")
    started = time.monotonic()
    try:
        result = audit_record(args.record_dir, receipts=receipts, trusted_bundle=trusted,
                              report=None if quiet else print, progress=None if quiet else stage_progress())
    except VerificationError as exc:
        if args.json:
            print(json.dumps({"result": "fail", "record": args.record_dir, "error": exc.code, "message": str(exc)},
                             indent=2))
        raise
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps({
            "result": "pass", "record": args.record_dir, "election": result.election.id,
            "entries": result.tree_size, "checkpoints": result.checkpoints, "receipts": result.receipts,
            "root_hash": result.root_hash.hex(), "keys_from": "record" if trusted is None else "--keys",
            "fingerprints": {purpose: f"sha256:{value}" for purpose, value in result.fingerprints.items()},
            "tally": result.tally_note, "seconds": round(elapsed, 1)}, indent=2))
        return 0
    print(f"PASS: election {result.election.id}: {result.tree_size:,} entries, {result.checkpoints:,} checkpoints, "
          f"{result.receipts:,} receipts; the signed tally is the count of this log ({elapsed:.1f} s)")
    if not args.quiet:
        for line in format_tally(result.tally, result.election):
            print(line)
    if trusted is None:
        # Stands alone (-q shows no key lines above): the fingerprints to compare are here.
        keys = ", ".join(f"{purpose} key sha256:{value}" for purpose, value in sorted(result.fingerprints.items()))
        print(f"note: the keys were taken from the record itself ({keys}); compare these fingerprints with the "
              "key ceremony's publication, or pass --keys with the published bundle", file=sys.stderr)
    return 0
