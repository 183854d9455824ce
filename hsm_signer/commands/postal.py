"""``hsm-signer postal record``: returned postal ballots, one at a time or a batch CSV.

Recording a postal ballot consumes its code (so the code can no longer vote online) and
appends a ``postal`` entry to the log. A code already used online makes the postal
ballot a rejected duplicate. Rows are identified in the report by their line number in
the CSV, never by code. Each recorded ballot's receipt is written for the official.

Batch CSV: a ``code`` column and one column per contest; a cell lists the chosen option
ids separated by spaces (empty for a blank vote in that contest).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..ballots import CodeUsedError, InvalidCodeError, ReceiptPendingError
from ..election import BallotError
from ..errors import ConfigError, HsmSignerError
from ..storage.base import POSTAL
from ._service import open_service

POSTAL_CHUNK = 1000
"""Rows stored per group commit (and between progress lines)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("postal", help="record returned postal ballots")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    record = sub.add_parser("record", help="record one postal ballot (--code, --choice) or a CSV batch (--csv)")
    record.add_argument("election")
    record.add_argument("--csv", help="batch CSV from the count (code column + one column per contest)")
    record.add_argument("--code", help="one ballot's code (prefer --csv: command lines can be seen by other users)")
    record.add_argument("--choice", action="append", default=[], metavar="CONTEST=OPTION[,OPTION]",
                        help="one ballot's choice in a contest (repeat per contest)")
    record.add_argument("--receipts", help="directory for the receipts of recorded ballots (created)")
    record.add_argument("--report", help="write the report as JSON to this file too")
    record.set_defaults(func=record_cmd)


def _rows_from_csv(path: str, contests: list[str]) -> list[tuple[int, str, dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if "code" not in columns:
                raise ConfigError(f"postal CSV {path} has no 'code' column")
            unknown = sorted(set(columns) - {"code", *contests})
            if unknown:
                raise ConfigError(f"postal CSV {path} has unknown column(s) {', '.join(unknown)}; "
                                  f"the contests are {', '.join(contests)}")
            return [(reader.line_num, row["code"] or "", {c: (row.get(c) or "").split() for c in contests})
                    for row in reader]
    except OSError as exc:
        raise ConfigError(f"cannot read postal CSV {path}: {exc.strerror}") from None


def _row_from_args(args, contests: list[str]) -> list[tuple[int, str, dict]]:
    selections: dict[str, list[str]] = {c: [] for c in contests}
    for choice in args.choice:
        contest, sep, options = choice.partition("=")
        if not sep:
            raise ConfigError(f"--choice {choice!r} must look like CONTEST=OPTION[,OPTION]")
        selections[contest] = [o for o in options.split(",") if o]
    return [(1, args.code, selections)]


def record_cmd(args) -> int:
    if bool(args.csv) == bool(args.code):
        raise ConfigError("give either --csv FILE or --code CODE (with --choice)")
    receipts_dir = Path(args.receipts) if args.receipts else None
    # Sign the ballots here, or follow the sequencer that already runs for this log.
    service = open_service(args, with_sequencer=True, follow_commits=True)
    try:
        election = service.storage.get_election(args.election).election
        contests = [c.id for c in election.contests]
        rows = _rows_from_csv(args.csv, contests) if args.csv else _row_from_args(args, contests)
        if receipts_dir:
            receipts_dir.mkdir(parents=True, exist_ok=True)
        service.start()
        report: dict[str, list[dict[str, Any]]] = {"recorded": [], "duplicates": [], "invalid": [], "pending": []}
        stored: list[tuple[int, str]] = []
        for start in range(0, len(rows), POSTAL_CHUNK):
            chunk = rows[start:start + POSTAL_CHUNK]
            results = service.ballots.submit_many(args.election, [(code, sel) for _, code, sel in chunk], channel=POSTAL)
            for (line, _, _), result in zip(chunk, results):
                if isinstance(result, CodeUsedError):
                    report["duplicates"].append({"line": line, "reason": str(result)})
                elif isinstance(result, (InvalidCodeError, BallotError)):
                    report["invalid"].append({"line": line, "reason": str(result)})
                elif isinstance(result, Exception):
                    raise result
                else:
                    stored.append((line, result.ballot_id))
            if len(rows) > POSTAL_CHUNK:
                print(f"  stored {min(start + POSTAL_CHUNK, len(rows)):,} of {len(rows):,} rows", file=sys.stderr)
        for line, ballot_id in stored:
            try:
                receipt = service.ballots.wait_for_receipt(ballot_id, timeout=60)
            except ReceiptPendingError:
                report["pending"].append({"line": line, "ballot_id": ballot_id})
                continue
            report["recorded"].append({"line": line, "ballot_id": ballot_id, "leaf_index": receipt.leaf_index})
            if receipts_dir:
                fd = os.open(receipts_dir / f"postal-{receipt.leaf_index}-{ballot_id}.json",
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(receipt.to_json())
    finally:
        service.close()
    print(f"postal ballots: {len(report['recorded'])} recorded, {len(report['duplicates'])} rejected as "
          f"duplicates (code already used), {len(report['invalid'])} invalid, {len(report['pending'])} awaiting a signature")
    for kind in ("duplicates", "invalid", "pending"):
        for item in report[kind]:
            print(f"  line {item['line']}: {kind}: {item.get('reason', 'stored; receipt not yet signed')}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if report["pending"]:
        raise HsmSignerError("some recorded ballots have no signed receipt yet; is the HSM up? "
                             "run the same command again later to fetch them (recording is idempotent)")
    return 0 if not report["invalid"] else 3
