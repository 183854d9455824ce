"""``hsm-signer codes issue``: voting codes for the mailing house.

Codes are generated here, hashed in the HSM with the code key, written to a CSV for the
printers (created exclusively, mode 0600, never overwritten) and only then committed to
the database as hashes. The codes themselves are never stored or logged.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .. import codes as codes_mod
from ..election import CLOSED
from ..errors import ConfigError, ElectionError
from ._common import progress_printer
from ._service import open_service


def register(subparsers) -> None:
    parser = subparsers.add_parser("codes", help="issue voting codes")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = sub.add_parser("issue", help="issue codes to a new CSV file for the mailing house")
    issue.add_argument("election")
    issue.add_argument("--count", type=int, help="how many codes (not with --members)")
    issue.add_argument("--members", help="members CSV: one code per row, its member number column kept")
    issue.add_argument("--member-column", default="member_number",
                       help="the members CSV column that identifies the member (default: member_number)")
    issue.add_argument("--out", required=True, help="output CSV (must not exist)")
    issue.set_defaults(func=issue_cmd)


def _members(path: str, column: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise ConfigError(f"members CSV {path} has no {column!r} column "
                                  f"(columns: {', '.join(reader.fieldnames or [])}); use --member-column")
            members = [row[column].strip() for row in reader]
    except OSError as exc:
        raise ConfigError(f"cannot read members CSV {path}: {exc.strerror}") from None
    blank = [i + 2 for i, m in enumerate(members) if not m]
    if blank:
        raise ConfigError(f"members CSV {path}: empty {column!r} on line {blank[0]}")
    if len(set(members)) != len(members):
        raise ConfigError(f"members CSV {path}: a member number appears twice")
    return members


def issue_cmd(args) -> int:
    if (args.count is None) == (args.members is None):
        raise ConfigError("give exactly one of --count N or --members CSV")
    members = _members(args.members, args.member_column) if args.members else None
    count = len(members) if members is not None else args.count
    if count < 1 or count > 10_000_000:
        raise ConfigError("--count must be between 1 and 10,000,000")
    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} already exists; a codes file is never overwritten: choose a new name")
    if not out.resolve().parent.is_dir() or not os.access(out.resolve().parent, os.W_OK):
        raise ConfigError(f"--out {out}: the folder {out.resolve().parent} does not exist or is not writable; "
                          "no code was issued")
    service = open_service(args)
    try:
        record = service.storage.get_election(args.election)
        if record.state == CLOSED:
            raise ElectionError(f"election {args.election!r} is closed; no more codes can be issued")
        issued = list(codes_mod.issue(service.ballots.code_mac, args.election, count,
                                      progress=progress_printer("hashing codes in the HSM")))
        if len({digest for _, digest in issued}) != len(issued):
            raise ElectionError("two generated codes collided (astronomically unlikely); run the command again")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["member_number", "code"] if members is not None else ["code"])
                for i, (code, _) in enumerate(issued):
                    shown = codes_mod.display(code)
                    writer.writerow([members[i], shown] if members is not None else [shown])
                handle.flush()
                os.fsync(handle.fileno())
            service.storage.add_codes(args.election, [digest for _, digest in issued])
        except BaseException:
            out.unlink(missing_ok=True)  # codes not in the database must not reach the printers
            raise
    finally:
        service.close()
    print(f"issued {count:,} codes for {args.election!r} to {out} (keep this file secret; "
          "the database holds only HSM-keyed hashes)")
    return 0
