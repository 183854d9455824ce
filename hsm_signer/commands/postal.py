"""``hsm-signer postal record``: returned postal ballots, one at a time or a batch CSV.

Recording a postal ballot consumes its code (so the code can no longer vote online) and
appends a sealed ``postal`` entry to the log. The whole batch is checked before anything
is recorded (:mod:`hsm_signer.postal`); one wrong row records nothing unless
``--record-good-rows``; ``--dry-run`` changes nothing. Every row gets one outcome in the
report (printed, and as JSON with ``--report``), named by its line number, never by code.
Running the same batch again (after a crash) records what is missing and nothing twice.
The CSV format is in docs/ELECTIONS.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .. import postal
from ..ballots import ReceiptPendingError
from ..election import OPEN
from ..errors import ConfigError, HsmSignerError, PollNotOpenError
from ._common import progress_printer
from ._service import open_service

POSTAL_CHUNK = 1000
"""Rows stored per group commit (and between progress lines)."""

SIGNED_TIMEOUT = 60.0
"""Seconds to wait for the signed checkpoint that covers the batch."""

LABELS = {
    postal.RECORDED: "recorded", postal.ALREADY_RECORDED: "already recorded by an earlier run",
    postal.WOULD_RECORD: "would be recorded", postal.NOT_RECORDED: "not recorded (other rows are wrong)",
    postal.DUPLICATE_ONLINE: "duplicate of an online vote", postal.DUPLICATE_POSTAL: "code already used by post",
    postal.DUPLICATE_IN_BATCH: "duplicate within the batch", postal.INVALID: "invalid",
    postal.PENDING: "stored, receipt not yet signed",
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("postal", help="record returned postal ballots")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    record = sub.add_parser("record", help="record one postal ballot (--code, --choice) or a CSV batch (--csv)",
                            description="Check a batch of returned postal ballots whole, then record it. "
                                        "The CSV format is in docs/ELECTIONS.md.")
    record.add_argument("election")
    record.add_argument("--csv", help="batch CSV from the count: a header 'code,<contest id>,...', then one row "
                                      "per ballot; options in a cell separated by commas or spaces")
    record.add_argument("--code", help="one ballot's code (prefer --csv: command lines can be seen by other users)")
    record.add_argument("--choice", action="append", default=[], metavar="CONTEST=OPTION[,OPTION]",
                        help="one ballot's choice in a contest (repeat per contest; options separated by commas "
                             "or spaces, as in a CSV cell)")
    record.add_argument("--receipts", help="directory for the receipts of recorded ballots (created)")
    record.add_argument("--report", help="write the report (every row's outcome) as JSON to this file too")
    record.add_argument("--dry-run", action="store_true", help="check the batch and report what would happen; "
                                                                "record nothing")
    record.add_argument("--record-good-rows", action="store_true",
                        help="record the good rows even when others are wrong (by default one wrong row records "
                             "nothing)")
    record.set_defaults(func=record_cmd)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the postal CSV {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the postal CSV {path} is not UTF-8 text; save it as CSV UTF-8") from None


def _check_writable(args) -> Path | None:
    """Fail before anything is recorded if the receipts or report cannot be written."""
    if args.report and not Path(args.report).resolve().parent.is_dir():
        raise ConfigError(f"--report {args.report}: the folder {Path(args.report).resolve().parent} does not exist")
    if not args.receipts or args.dry_run:
        return None
    receipts = Path(args.receipts)
    try:
        receipts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--receipts {args.receipts}: cannot create the folder ({exc.strerror})") from None
    if not os.access(receipts, os.W_OK):
        raise ConfigError(f"--receipts {args.receipts}: the folder is not writable")
    return receipts


def record_cmd(args) -> int:
    if bool(args.csv) == bool(args.code):
        raise ConfigError("give either --csv FILE or --code CODE (with --choice)")
    if args.choice and args.csv:
        raise ConfigError("--choice goes with --code; a CSV has the choices in its cells")
    text = _read_text(args.csv) if args.csv else None
    receipts_dir = _check_writable(args)
    # Sign the ballots here, or follow the sequencer that already runs for this log.
    service = open_service(args, with_sequencer=not args.dry_run, follow_commits=True)
    try:
        record = service.storage.get_election(args.election)
        election = record.election
        if record.state != OPEN and not args.dry_run:
            raise PollNotOpenError(f"the poll for election {args.election!r} is {record.state}: postal ballots "
                                   f"are recorded while it is open (`hsm-signer election open {args.election}`); "
                                   "--dry-run checks a batch in any state")
        if text is not None:
            rows, problems = postal.read_csv(text, election)
        else:
            rows, problems = [(1, args.code, postal.parse_choices(args.choice, election))], []
        batch = postal.check_batch(service.ballots, election, rows, problems)
        if args.dry_run:
            outcomes = postal.dry_run(batch)
        elif batch.problems and not args.record_good_rows:
            outcomes = postal.not_recorded(batch)
        else:
            service.start()
            show = progress_printer("  stored") if len(batch.to_record) > POSTAL_CHUNK else None
            stored = postal.record(service.ballots, args.election, batch.to_record, chunk=POSTAL_CHUNK,
                                   progress=show)
            outcomes = sorted([*batch.outcomes, *_signed(service, args.election, stored, receipts_dir)],
                              key=lambda o: o.line)
    finally:
        service.close()
    return _report(args, election.id, outcomes, bool(batch.problems))


def _signed(service, election_id: str, stored: list[postal.Outcome], receipts_dir: Path | None) -> list[postal.Outcome]:
    """Each stored row with its leaf index once a signed checkpoint covers it (and its receipt
    written), or ``pending``. Receipt files are never overwritten: a rerun keeps the first."""
    done = [o for o in stored if o.ballot_id is None]
    waiting = {o.ballot_id: o for o in stored if o.ballot_id is not None}
    indexes: dict[str, int] = {}
    deadline = time.monotonic() + SIGNED_TIMEOUT
    while True:
        indexes.update(service.storage.leaf_indexes([b for b in waiting if b not in indexes]))
        latest = service.storage.latest_checkpoint(election_id)
        covered = latest[0] if latest else 0
        if len(indexes) == len(waiting) and all(i < covered for i in indexes.values()):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for ballot_id, outcome in waiting.items():
        index = indexes.get(ballot_id)
        if index is None or index >= covered:
            done.append(postal.Outcome(outcome.line, postal.PENDING, "stored; its signed receipt is not ready yet",
                                       ballot_id=ballot_id))
            continue
        if receipts_dir is not None:
            try:
                receipt = service.ballots.wait_for_receipt(ballot_id, timeout=SIGNED_TIMEOUT)
            except ReceiptPendingError:
                done.append(postal.Outcome(outcome.line, postal.PENDING, "stored; its signed receipt is not ready "
                                           "yet", ballot_id=ballot_id))
                continue
            _write_receipt(receipts_dir / f"postal-{receipt.leaf_index}-{ballot_id}.json", receipt.to_json())
        done.append(postal.Outcome(outcome.line, outcome.outcome, outcome.reason, ballot_id, index))
    return done


def _write_receipt(path: Path, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return  # written by an earlier run of this batch
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _report(args, election_id: str, outcomes: list[postal.Outcome], problems: bool) -> int:
    counts = Counter(o.outcome for o in outcomes)
    report: dict[str, Any] = {
        "election": election_id, "source": args.csv or "--code", "dry_run": bool(args.dry_run),
        "rows_read": len(outcomes), "counts": {kind: counts.get(kind, 0) for kind in postal.OUTCOMES},
        "rows": [o.to_dict() for o in outcomes],
    }
    if args.report:
        path = Path(args.report)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    head = "postal ballots (dry run: nothing recorded)" if args.dry_run else "postal ballots"
    shown = [f"{counts[kind]} {LABELS[kind]}" for kind in postal.OUTCOMES if counts.get(kind)]
    print(f"{head}: {len(outcomes)} row{'' if len(outcomes) == 1 else 's'}: {', '.join(shown) or 'none'}")
    for outcome in outcomes:
        if outcome.outcome not in (postal.RECORDED, postal.ALREADY_RECORDED, postal.WOULD_RECORD,
                                   postal.NOT_RECORDED):
            print(f"  row {outcome.line}: {LABELS[outcome.outcome]}: {outcome.reason}")
    if problems and not args.record_good_rows and not args.dry_run:
        good = counts[postal.NOT_RECORDED]
        print("nothing was recorded: correct the rows above and run the same command again"
              + (f", or add --record-good-rows to record the {good} good row{'' if good == 1 else 's'} now"
                 if good else ""), file=sys.stderr)
    if counts.get(postal.PENDING):
        raise HsmSignerError("some recorded ballots have no signed receipt yet; is the HSM up? run the same "
                             "command again later to fetch them (recording is idempotent)")
    return 3 if problems else 0
