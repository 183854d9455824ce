"""``hsm-signer record export ELECTION OUT_DIR``: write the public election record (no HSM needed)."""

from __future__ import annotations

import sys

from ..audit import audit_record
from ..record import export_record
from ..storage import open_storage
from ._common import load_config, progress_printer, stage_progress


def register(subparsers) -> None:
    parser = subparsers.add_parser("record", help="export the published election record")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser(
        "export", help="write the record of a closed, tallied election into a new directory",
        description="Write election.json, keys/, entries.jsonl, checkpoints/, tally.txt, README.md and "
                    "MANIFEST.json into OUT_DIR (which must not exist), then audit the result.")
    export.add_argument("election")
    export.add_argument("out_dir", metavar="OUT_DIR")
    export.add_argument("--no-audit", action="store_true", help="do not audit the record after writing it")
    export.set_defaults(func=export_cmd)


def export_cmd(args) -> int:
    cfg = load_config(args)
    storage = open_storage(cfg.storage_url)
    try:
        result = export_record(storage, cfg.key_bundle, args.election, args.out_dir,
                               progress=progress_printer("writing entries", stream=sys.stderr))
    finally:
        storage.close()
    print(f"wrote the record of {result.election!r} to {result.directory}: {result.tree_size} entries, "
          f"{result.checkpoints} checkpoints, {result.files} files listed in MANIFEST.json")
    if not args.no_audit:
        audit_record(result.directory, report=lambda line: print(line, file=sys.stderr),
                     progress=stage_progress("audit: "))
        print(f"the record passes the audit; publish it and let anyone run: hsm-signer audit {result.directory.name}")
    return 0
