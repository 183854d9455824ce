"""Postal batches: read the count's CSV, check every row, then record, never losing track.

A batch is checked whole before anything is recorded: every row's shape (one cell per
column), its code (format and check symbol, then known to the election and unused), its
choices (option ids, at most the contest's limit; a candidate's name is answered with the
id it probably meant) and codes repeated within the file. Rows that cannot be recorded are
*problems* (``invalid``, ``duplicate_in_batch``); by default one problem records nothing.

Recording is idempotent, which is what makes a batch safe to run again after a crash:
each code is consumed in the transaction that stores its ballot, so a row stored by an
interrupted run is found again (``already_recorded``, with its receipt, within the
resubmission window) or refused as a code already used by post; it is never stored twice.

The options of a contest are separated the same way everywhere, in a CSV cell and in
``--choice``: by commas or spaces (option ids never contain either). An empty cell is no
choice in that contest. Rows are named by their line number in the file (the header is
line 1), never by code: this module never logs, reports or puts a code in an error.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field

from . import codes as codes_mod
from .ballots import BallotBox, CodeUsedError, HashedCode, InvalidCodeError, Submission
from .election import BallotError, Contest, Election
from .errors import ConfigError
from .storage.base import ONLINE, POSTAL

# Outcomes of a row, as the report names them (stable: docs/ELECTIONS.md lists them).
RECORDED = "recorded"                    # stored by this run
ALREADY_RECORDED = "already_recorded"    # this same ballot was stored by an earlier run of the batch
WOULD_RECORD = "would_record"            # --dry-run: would be stored
DUPLICATE_ONLINE = "duplicate_online"    # the code was used online: the online ballot stands
DUPLICATE_POSTAL = "duplicate_postal"    # the code was used by post for another ballot (or beyond the window)
DUPLICATE_IN_BATCH = "duplicate_in_batch"  # the same code on an earlier row of this file
INVALID = "invalid"                      # the row cannot be a ballot (shape, code, choices)
PENDING = "pending"                      # stored; its signed receipt is not ready yet
NOT_RECORDED = "not_recorded"            # a good row left alone because other rows are wrong
OUTCOMES = (RECORDED, ALREADY_RECORDED, WOULD_RECORD, NOT_RECORDED, DUPLICATE_ONLINE, DUPLICATE_POSTAL,
            DUPLICATE_IN_BATCH, INVALID, PENDING)
PROBLEMS = frozenset({INVALID, DUPLICATE_IN_BATCH})
"""Outcomes that mean the file is wrong: one of them records nothing unless asked."""

OPTION_SEPARATORS = re.compile(r"[,\s]+")
MAX_CELL = 1000
"""Characters in one cell at most (a row is one paper ballot)."""


@dataclass(frozen=True)
class Row:
    """One row of the batch: its line number, its code hashed in the HSM (never shown) and its choices."""

    line: int
    code: HashedCode = field(repr=False)
    selections: dict[str, list[str]] = field(hash=False, repr=False)


@dataclass(frozen=True)
class Outcome:
    line: int
    outcome: str
    reason: str = ""
    ballot_id: str | None = None
    leaf_index: int | None = None

    def to_dict(self) -> dict:
        item: dict = {"row": self.line, "outcome": self.outcome}
        if self.reason:
            item["reason"] = self.reason
        if self.ballot_id is not None:
            item["ballot_id"] = self.ballot_id
        if self.leaf_index is not None:
            item["leaf_index"] = self.leaf_index
        return item


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after the whole-file check: rows to record and rows that are not."""

    to_record: tuple[Row, ...]
    outcomes: tuple[Outcome, ...]  # everything already decided (problems, duplicates of online votes)
    by_post: frozenset[int] = frozenset()  # lines of rows to record whose code is already used by post

    @property
    def problems(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if o.outcome in PROBLEMS)


# --- reading ------------------------------------------------------------------------------
def split_options(text: str) -> list[str]:
    """The options of one contest as written (a CSV cell or the part after ``=`` of ``--choice``)."""
    return [part for part in OPTION_SEPARATORS.split(text.strip()) if part]


def parse_choices(choices: Sequence[str], election: Election) -> dict[str, str]:
    """``--choice CONTEST=OPTIONS`` arguments as raw cells per contest (unchosen contests empty)."""
    cells = {c.id: "" for c in election.contests}
    for choice in choices:
        contest, sep, options = choice.partition("=")
        contest = contest.strip()
        if not sep:
            raise ConfigError(f"--choice {choice!r} must look like CONTEST=OPTION (several options separated "
                              "by commas or spaces)")
        if contest not in cells:
            raise ConfigError(f"--choice {choice!r}: there is no contest {contest!r}; the contests are "
                              f"{', '.join(cells)}")
        cells[contest] = options
    return cells


def read_csv(text: str, election: Election) -> tuple[list[tuple[int, str, dict[str, str]]], list[Outcome]]:
    """``(rows, problems)``: each well-shaped row as ``(line, code text, cells per contest)``
    and a problem for each row of the wrong length. A wrong header is a ConfigError: no row
    can be read without it."""
    contests = [c.id for c in election.contests]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ConfigError("the postal CSV is empty; its first line names the columns: "
                          f"code,{','.join(contests)}") from None
    except csv.Error as exc:
        raise ConfigError(f"the postal CSV's header is not CSV ({exc})") from None
    columns = [name.strip() for name in header]
    expected = f"code,{','.join(contests)}"
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise ConfigError(f"the postal CSV names column(s) {', '.join(duplicated)} twice; the header must be {expected}")
    unknown = [name for name in columns if name not in {"code", *contests}]
    missing = [name for name in ["code", *contests] if name not in columns]
    if unknown or missing:
        parts = ([f"unknown column(s) {', '.join(repr(u) for u in unknown)}"] if unknown else []) + \
                ([f"missing column(s) {', '.join(missing)}"] if missing else [])
        raise ConfigError(f"the postal CSV has {' and '.join(parts)}; the header must be {expected} "
                          "(one column per contest, named by the contest's id)")
    rows: list[tuple[int, str, dict[str, str]]] = []
    problems: list[Outcome] = []
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Outcome(reader.line_num, INVALID, f"not valid CSV ({exc})"))
            break  # the reader cannot go on after a broken quote
        line = reader.line_num
        if not cells or all(not cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(columns):
            what = "short" if len(cells) < len(columns) else "long"
            problems.append(Outcome(line, INVALID, f"the row is {what}: {len(cells)} cell(s) where the header has "
                                                   f"{len(columns)} ({expected})"))
            continue
        if any(len(cell) > MAX_CELL for cell in cells):
            problems.append(Outcome(line, INVALID, f"a cell is longer than {MAX_CELL} characters"))
            continue
        by_name = dict(zip(columns, cells))
        rows.append((line, by_name["code"], {c: by_name[c] for c in contests}))
    return rows, problems


# --- checking -----------------------------------------------------------------------------
def _suggestion(contest: Contest, written: str, cell: str) -> str:
    """Why ``written`` is no option of ``contest`` and, when it looks like one, which it meant."""
    by_title = {o.title.casefold(): o.id for o in contest.options}
    by_id = {o.id.casefold(): o.id for o in contest.options}
    meant = by_title.get(cell.strip().casefold()) or by_title.get(written.casefold()) \
        or by_id.get(written.casefold())
    if meant is None:
        close = difflib.get_close_matches(written.casefold(), [*by_id, *by_title], n=1, cutoff=0.6)
        meant = (by_id.get(close[0]) or by_title.get(close[0])) if close else None
    if meant is not None:
        return f"{written!r} is not an option id; did you mean {meant!r}?"
    return f"{written!r} is not an option; the options are {', '.join(contest.option_ids)}"


def check_choices(election: Election, cells: dict[str, str]) -> dict[str, list[str]]:
    """The selections of one ballot from its raw cells, or BallotError saying what to fix."""
    selections: dict[str, list[str]] = {}
    for contest in election.contests:
        cell = cells.get(contest.id, "")
        chosen = split_options(cell)
        for written in chosen:
            if written not in contest.option_ids:
                raise BallotError(f"contest {contest.id!r}: {_suggestion(contest, written, cell)}")
        if len(set(chosen)) != len(chosen):
            raise BallotError(f"contest {contest.id!r}: an option is written twice")
        if len(chosen) > contest.max_choices:
            raise BallotError(f"contest {contest.id!r}: {len(chosen)} options chosen where at most "
                              f"{contest.max_choices} may be")
        selections[contest.id] = chosen
    return election.validate_selections(selections)


def check_batch(box: BallotBox, election: Election,
                rows: Iterable[tuple[int, str, dict[str, str]]], problems: Iterable[Outcome] = ()) -> CheckedBatch:
    """Check every row (shape, code, choices, repeats in the file, code status) and decide
    what is to be recorded. Reads only: nothing is stored."""
    outcomes = list(problems)
    candidates: list[tuple[int, str, dict[str, list[str]]]] = []
    first_line: dict[str, tuple[int, dict[str, list[str]]]] = {}
    for line, code_text, cells in rows:
        try:
            code = codes_mod.normalise(code_text)
        except codes_mod.MalformedCodeError as exc:
            outcomes.append(Outcome(line, INVALID, f"code: {exc}"))
            continue
        try:
            selections = check_choices(election, cells)
        except BallotError as exc:
            outcomes.append(Outcome(line, INVALID, str(exc)))
            continue
        if code in first_line:
            earlier, earlier_selections = first_line[code]
            same = "with the same choices" if earlier_selections == selections else "with different choices"
            outcomes.append(Outcome(line, DUPLICATE_IN_BATCH, f"the code of row {earlier} again, {same}; "
                                                             "set this form aside"))
            continue
        first_line[code] = (line, selections)
        candidates.append((line, code, selections))
    # Each code is hashed in the HSM once, here; recording reuses the hash.
    hashed = box.hash_codes(election.id, [code for _, code, _ in candidates])
    statuses = iter(box.lookup_codes(election.id, [h for h in hashed if isinstance(h, HashedCode)]))
    to_record: list[Row] = []
    by_post: set[int] = set()
    for (line, _, selections), hashed_code in zip(candidates, hashed):
        status = next(statuses) if isinstance(hashed_code, HashedCode) else hashed_code
        if not isinstance(hashed_code, HashedCode) or isinstance(status, InvalidCodeError):
            outcomes.append(Outcome(line, INVALID, "code: not a code of this election"))
            continue
        if status.status == ONLINE:
            outcomes.append(Outcome(line, DUPLICATE_ONLINE, "the code was already used online: the online "
                                                            "ballot stands and this one is not counted"))
            continue
        to_record.append(Row(line, hashed_code, selections))  # unused, or used by post (an earlier run of this batch?)
        if status.status == POSTAL:
            by_post.add(line)
    return CheckedBatch(tuple(to_record), tuple(sorted(outcomes, key=lambda o: o.line)), frozenset(by_post))


def dry_run(batch: CheckedBatch) -> list[Outcome]:
    """What recording ``batch`` would do, changing nothing."""
    def would(row: Row) -> Outcome:
        if row.line in batch.by_post:
            return Outcome(row.line, DUPLICATE_POSTAL, "the code is already used by post (by an earlier run of "
                                                       "this batch, or another postal ballot): not stored again")
        return Outcome(row.line, WOULD_RECORD)
    return sorted([*batch.outcomes, *(would(row) for row in batch.to_record)], key=lambda o: o.line)


def not_recorded(batch: CheckedBatch) -> list[Outcome]:
    """The outcome of a batch with problems when the good rows are not to be recorded alone."""
    return sorted([*batch.outcomes, *(Outcome(row.line, NOT_RECORDED, "nothing was recorded: other rows are wrong")
                                      for row in batch.to_record)], key=lambda o: o.line)


def record(box: BallotBox, election_id: str, rows: Sequence[Row], *, chunk: int = 1000,
           progress=None) -> list[Outcome]:
    """Store ``rows`` as postal ballots, ``chunk`` at a time; ``progress(stored, total)``
    after each chunk is durably stored.

    Each row gets ``recorded``, ``already_recorded`` (with its ballot id), a duplicate or
    ``invalid``; leaf indexes and receipts come after (:func:`hsm_signer.commands.postal`)."""
    outcomes: list[Outcome] = []
    parts = [rows[start:start + chunk] for start in range(0, len(rows), chunk)]
    # Each part is sealed while the part before it is being stored (BallotBox.submit_batches).
    batches = box.submit_batches(election_id, ([(row.code, row.selections) for row in part] for part in parts),
                                 channel=POSTAL)
    with closing(batches):
        for part, results in zip(parts, batches):
            outcomes += (_recorded(row, result) for row, result in zip(part, results))
            if progress:
                progress(len(outcomes), len(rows))
    return outcomes


def _recorded(row: Row, result: object) -> Outcome:
    """The outcome of one stored row from what :meth:`BallotBox.submit_batches` answered."""
    if isinstance(result, CodeUsedError):
        if result.status == POSTAL:
            return Outcome(row.line, DUPLICATE_POSTAL, "the code was already used by post for a different ballot (or "
                                                       "by an earlier run of this batch whose resubmission window has "
                                                       "ended)")
        return Outcome(row.line, DUPLICATE_ONLINE, "the code was already used online: the online ballot stands and "
                                                   "this one is not counted")
    if isinstance(result, (InvalidCodeError, BallotError)):
        return Outcome(row.line, INVALID, str(result))
    if isinstance(result, Exception):
        raise result
    if not isinstance(result, Submission):
        raise TypeError(f"unexpected result {type(result).__name__} for row {row.line}")
    return Outcome(row.line, RECORDED if result.new else ALREADY_RECORDED,
                   "" if result.new else "recorded by an earlier run of this batch", ballot_id=result.ballot_id)
