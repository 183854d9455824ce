"""Election definitions and the rules a ballot must follow.

An election is defined in a TOML file (strictly parsed)::

    id = "leader-2026"
    title = "Party leadership election 2026"
    origin = "vote.example.org/leader-2026"   # optional: else <config log.origin_prefix>/<id>
    opens_at = 2026-08-01T09:00:00Z      # optional: no ballot is accepted before it
    closes_at = 2026-09-02T17:00:00Z     # optional: none after it; the sequencer closes the poll then
    timezone = "Europe/London"           # optional: voters' pages show times in it (else UTC)
    contact = "Call 0300 123 4567 (9am-5pm) or email votes@example.org"  # optional: help for voters

    [[contests]]
    id = "leader"
    title = "Leader"
    max_choices = 1                      # choose-one unless set higher (choose up to k)
    options = [
      { id = "candidate-a", title = "Candidate A" },
      { id = "candidate-b", title = "Candidate B" },
    ]

``origin`` names the election's log in every checkpoint (c2sp.org/tlog-checkpoint): a
globally unique ``<prefix>/<election id>``. ``hsm-signer election create`` fills it in from
the configuration's ``log.origin_prefix`` when the definition has none; an election stored
before origins were configured has none, and its log keeps the old ``hsm-signer/<id>``.

The life cycle is draft → open → closed, one way only; :func:`check_transition` is the
single place that enforces it. Nothing here touches storage or the HSM.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError, ElectionError
from .errors import FormatError
from .log.checkpoint import check_origin, legacy_origin
from .log.leaf import check_id
from .strict import Table, load_toml

DOCS = "the election definition format in docs/ELECTIONS.md"
"""Where an error in a definition points the reader."""

DRAFT, OPEN, CLOSED = "draft", "open", "closed"
STATES = (DRAFT, OPEN, CLOSED)
_NEXT = {DRAFT: OPEN, OPEN: CLOSED}


class BallotError(ElectionError):
    """A ballot's selections do not fit the election's contests."""


@dataclass(frozen=True)
class Option:
    id: str
    title: str


@dataclass(frozen=True)
class Contest:
    id: str
    title: str
    options: tuple[Option, ...]
    max_choices: int = 1

    @cached_property  # read for every option of every ballot checked
    def option_ids(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.options)


@dataclass(frozen=True)
class Election:
    id: str
    title: str
    contests: tuple[Contest, ...]
    opens_at: str | None = None
    closes_at: str | None = None
    origin: str | None = None
    timezone: str | None = None  # IANA name; only how times are shown to voters
    contact: str | None = None   # who voters ask for help, shown on their pages

    @property
    def log_origin(self) -> str:
        """The origin line of this election's checkpoints (``hsm-signer/<id>`` for elections defined without one)."""
        return self.origin or legacy_origin(self.id)

    def with_origin(self, prefix: str) -> "Election":
        """This definition with origin ``<prefix>/<id>``, unless it names its origin already."""
        if self.origin is not None:
            return self
        return replace(self, origin=check_origin(f"{prefix}/{self.id}", self.id))

    def schedule_refusal(self, now: float) -> str | None:
        """Why the schedule refuses a ballot at ``now`` (Unix seconds), or None: before
        ``opens_at`` and from ``closes_at`` on, whatever state the poll is in."""
        if self.closes_at is not None and now >= instant(self.closes_at):
            return (f"the poll for election {self.id!r} closed at {human_time(self.closes_at)}; "
                    "no ballot is accepted after its closing time")
        if self.opens_at is not None and now < instant(self.opens_at):
            return (f"the poll for election {self.id!r} opens at {human_time(self.opens_at)}; "
                    "no ballot is accepted before its opening time")
        return None

    def closes_by(self, now: float) -> bool:
        """Whether ``now`` (Unix seconds) is at or past ``closes_at``."""
        return self.closes_at is not None and now >= instant(self.closes_at)

    def contest(self, contest_id: str) -> Contest:
        for contest in self.contests:
            if contest.id == contest_id:
                return contest
        raise BallotError(f"unknown contest {contest_id!r}")

    def validate_selections(self, selections: Any) -> dict[str, list[str]]:
        """The selections in canonical form (every contest, options sorted), or BallotError.

        Every contest must be present; an empty list is a blank vote for that contest.
        """
        if not isinstance(selections, Mapping):
            raise BallotError("selections must be an object mapping each contest to a list of options")
        unknown = sorted(set(selections) - {c.id for c in self.contests})
        if unknown:
            raise BallotError(f"unknown contest {unknown[0]!r}")
        clean: dict[str, list[str]] = {}
        for contest in self.contests:
            chosen = selections.get(contest.id)
            if chosen is None:
                raise BallotError(f"contest {contest.id!r} is missing (send an empty list for a blank vote)")
            if not isinstance(chosen, (list, tuple)) or not all(isinstance(o, str) for o in chosen):
                raise BallotError(f"contest {contest.id!r} must be a list of option ids")
            if len(set(chosen)) != len(chosen):
                raise BallotError(f"contest {contest.id!r} names an option twice")
            if len(chosen) > contest.max_choices:
                raise BallotError(
                    f"contest {contest.id!r} allows at most {contest.max_choices} choice"
                    f"{'s' if contest.max_choices > 1 else ''}, got {len(chosen)}")
            for option in chosen:
                if option not in contest.option_ids:
                    raise BallotError(f"contest {contest.id!r} has no option {option!r}")
            clean[contest.id] = sorted(chosen)
        return clean

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        # No "origin" key for a definition without one, so its digest (bound into the signed
        # tally) is what it was before origins existed.
        # The same for the optional display fields: a definition without them keeps its digest.
        origin = {} if self.origin is None else {"origin": self.origin}
        shown = {k: v for k, v in (("timezone", self.timezone), ("contact", self.contact)) if v is not None}
        return {
            "id": self.id, "title": self.title, **origin, **shown, "opens_at": self.opens_at, "closes_at": self.closes_at,
            "contests": [{"id": c.id, "title": c.title, "max_choices": c.max_choices,
                          "options": [{"id": o.id, "title": o.title} for o in c.options]}
                         for c in self.contests],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> "Election":
        return _parse(Table(dict(data), where, DOCS))

    @classmethod
    def from_json(cls, text: str) -> "Election":
        data = json.loads(text)
        data = {k: v for k, v in data.items() if v is not None}
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "Election":
        return _parse(Table(load_toml(path, "election definition"), "", DOCS))


def instant(text: str) -> float:
    """Unix seconds of a stored ``opens_at`` / ``closes_at`` (ISO 8601, UTC)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def human_time(text: str) -> str:
    """A stored time as people read it: ``2026-09-02 17:00 UTC``."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _time(table: Table, key: str) -> str | None:
    table._used.add(key)
    value = table.data.get(key)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigError("give a time zone (e.g. 2026-09-02T17:00:00Z)", f"{table.path + '.' if table.path else ''}{key}")
        return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{value!r} is not an ISO 8601 time", key) from None
        if parsed.tzinfo is None:
            raise ConfigError("give a time zone (e.g. 2026-09-02T17:00:00Z)", key)
        return parsed.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    raise ConfigError(f"expected a date-time, got {type(value).__name__}", key)


def _checked_id(table: Table, key: str) -> str:
    value = table.str(key)
    try:
        return check_id(value, key)
    except Exception:
        raise ConfigError(
            f"{value!r} is not a valid id: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit", f"{table.path + '.' if table.path else ''}{key}") from None


def _parse(root: Table) -> Election:
    election_id = _checked_id(root, "id")
    title = root.str("title")
    origin = root.str("origin", None)
    if origin is not None:
        try:
            check_origin(origin, election_id)
        except FormatError as exc:
            raise ConfigError(f"{exc}; write it as <a domain you control>[/path]/{election_id}", "origin") from None
    opens_at, closes_at = _time(root, "opens_at"), _time(root, "closes_at")
    timezone = _timezone(root)
    contact = root.str("contact", None)
    if contact is not None and not 1 <= len(contact.strip()) <= 500:
        raise ConfigError("contact must be 1-500 characters of text for voters", "contact")
    contests = []
    for table in root.tables("contests"):
        options = []
        for option in table.tables("options"):
            options.append(Option(id=_checked_id(option, "id"), title=option.str("title")))
            option.done()
        max_choices = table.int("max_choices", 1, low=1)
        contest = Contest(id=_checked_id(table, "id"), title=table.str("title"),
                          options=tuple(options), max_choices=max_choices)
        table.done()
        if len(options) < 1:
            raise ConfigError("a contest needs at least one option", f"{table.path}.options")
        if len(set(contest.option_ids)) != len(options):
            raise ConfigError("option ids must be unique within a contest", f"{table.path}.options")
        if max_choices > len(options):
            raise ConfigError(f"max_choices {max_choices} exceeds the {len(options)} options", f"{table.path}.max_choices")
        contests.append(contest)
    root.done()
    if not contests:
        raise ConfigError("an election needs at least one [[contests]] table", "contests")
    if len({c.id for c in contests}) != len(contests):
        raise ConfigError("contest ids must be unique", "contests")
    if opens_at and closes_at and closes_at <= opens_at:
        raise ConfigError("closes_at must be after opens_at", "closes_at")
    return Election(id=election_id, title=title, contests=tuple(contests), opens_at=opens_at, closes_at=closes_at,
                    origin=origin, timezone=timezone, contact=contact)


def _timezone(table: Table) -> str | None:
    name = table.str("timezone", None)
    if name is None:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name!r} is not a time zone this machine knows; use an IANA name such as "
                          "'Europe/London'", "timezone") from None
    return name


def check_transition(current: str, wanted: str, election_id: str) -> None:
    """Allow only draft → open → closed."""
    if _NEXT.get(current) != wanted:
        raise ElectionError(
            f"election {election_id!r} is {current}; it cannot become {wanted} "
            f"(the life cycle is draft → open → closed)")
