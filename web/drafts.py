"""The no-JavaScript vote's state between its steps, sealed in one short-lived cookie.

Without JavaScript each step of the vote is a form POST. So that Back and Reload never
resubmit a form, every POST is answered with a redirect (303) to a GET page
(post/redirect/get), and that page needs what the voter gave so far: the code and the
choices. They travel in one cookie, never in a URL,
sealed by :mod:`.sealed_cookie` (AES-256-GCM under a key derived from the session secret)
and bound to the election, so the browser holds only ciphertext and cannot forge a draft
or move it to another election; ``HttpOnly``, ``SameSite=Strict`` (a cross-site form cannot
cast with it), ``Path=/elections/<id>/vote``, gone after :data:`LIFETIME`. The server
stores nothing: the draft exists only in the voter's browser.

Casting replaces the draft with a *cast* draft that holds no code, only the ballot id and,
until the receipt page has shown them once, the choices just cast. Back to any step then
lands on the receipt (a GET page), never on a form; a refused step stores its message to
show once. With JavaScript none of this is used: the vote happens on one GET page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from flask import url_for
from werkzeug.wrappers import Response

from hsm_signer.election import Election

from . import sealed_cookie

COOKIE = "hsm_signer_vote"
LIFETIME = 30 * 60
"""Seconds a draft lasts after its last step (a voter who leaves the computer for longer types the code again)."""
CAST_LIFETIME = 10 * 60
"""Seconds the cast draft lets Back lead to the receipt."""
_LABEL = b"hsm-signer/vote-draft/v1"

CODE, BALLOT, CONFIRM, CAST = "code", "ballot", "confirm", "cast"
STEPS = (CODE, BALLOT, CONFIRM, CAST)


@dataclass(frozen=True)
class Draft:
    """Where a voter without JavaScript is: ``step`` and what that step needs.

    ``code`` (steps code, ballot, confirm): what the voter typed. ``chosen``/``none``: the
    ticked options and the contests marked "No choice". ``checked``: the ballot was sent
    and did not fit (the page shows why). ``error``: ``(error code, message)`` of a refused
    step, shown once. ``ballot_id``/``new`` (step cast): the ballot just cast.
    """

    step: str
    code: str = ""
    chosen: dict[str, list[str]] = field(default_factory=dict)
    none: frozenset[str] = frozenset()
    checked: bool = False
    error: tuple[str, str] | None = None
    ballot_id: str = ""
    new: bool = False

    def shown(self) -> "Draft":
        """This draft once its one-time parts (the error; after a cast, the choices) were shown."""
        if self.step == CAST:
            return replace(self, chosen={}, error=None)
        return replace(self, error=None)


class DraftTooLargeError(ValueError):
    """The draft does not fit in a cookie (a ballot with far more choices than any real one)."""


def _encode(draft: Draft, election: Election) -> dict:
    """Compact JSON: options by their index in the contest, so the cookie stays small (no
    choices at all, as after they were shown, is an empty list; a blank ballot is not)."""
    chosen = []
    for contest in election.contests if draft.chosen else ():
        index = {o.id: i for i, o in enumerate(contest.options)}
        chosen.append([index[o] for o in draft.chosen.get(contest.id, ()) if o in index])
    none = [i for i, c in enumerate(election.contests) if c.id in draft.none]
    return {"s": draft.step, "c": draft.code, "p": chosen, "n": none, "k": draft.checked,
            "e": list(draft.error) if draft.error else None, "b": draft.ballot_id, "w": draft.new}


def _decode(body: dict, election: Election) -> Draft | None:
    try:
        if body["s"] not in STEPS:
            return None
        contests = election.contests
        chosen = {c.id: [c.options[i].id for i in picks] for c, picks in zip(contests, body["p"])}
        error = body["e"]
        return Draft(step=body["s"], code=str(body["c"]), chosen=chosen,
                     none=frozenset(contests[i].id for i in body["n"]), checked=bool(body["k"]),
                     error=(str(error[0]), str(error[1])) if error else None, ballot_id=str(body["b"]),
                     new=bool(body["w"]))
    except (ValueError, KeyError, IndexError, TypeError):
        # Only this service can seal a draft, so this is one sealed for an election whose
        # definition changed: start again rather than guess.
        return None


def load(election: Election) -> Draft | None:
    """This request's draft for ``election``; None if there is none, or it expired or was tampered with."""
    body = sealed_cookie.load(COOKIE, _LABEL, election.id)
    return None if body is None else _decode(body, election)


def _path(election: Election) -> str:
    return url_for("vote.enter_code", election_id=election.id)


def save(response: Response, election: Election, draft: Draft) -> Response:
    """Set ``draft`` as the response's cookie (replacing any earlier one)."""
    lifetime = CAST_LIFETIME if draft.step == CAST else LIFETIME
    try:
        return sealed_cookie.save(response, COOKIE, _LABEL, election.id, _encode(draft, election),
                                  path=_path(election), lifetime=lifetime)
    except sealed_cookie.TooLargeError as exc:
        raise DraftTooLargeError(str(exc)) from None


def forget(response: Response, election: Election) -> Response:
    """Remove the draft from the browser."""
    return sealed_cookie.forget(response, COOKIE, path=_path(election))
