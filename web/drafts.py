"""The no-JavaScript vote's state between its steps, sealed in one short-lived cookie.

Without JavaScript each step of the vote is a form POST. So that Back and Reload never
resubmit a form, every POST is answered with a redirect (303) to a GET page
(post/redirect/get), and that page needs what the voter gave so far: the code and the
choices. They travel in one cookie, never in a URL:

* encrypted and authenticated with AES-256-GCM under a key derived (HKDF) from the
  session secret (``server.secret_key_file``, shared by every worker like the CSRF
  session) and bound to the election, so the browser holds only ciphertext and cannot
  forge or move a draft to another election;
* ``HttpOnly``, ``SameSite=Strict`` (a cross-site form cannot cast with it), ``Secure``
  behind TLS, ``Path=/elections/<id>/vote``, and gone after :data:`LIFETIME` (the
  cookie's ``Max-Age`` and an expiry sealed inside it, checked against the service clock);
* the server stores nothing: the draft exists only in the voter's browser.

Casting replaces the draft with a *cast* draft that holds no code, only the ballot id and,
until the receipt page has shown them once, the choices just cast. Back to any step then
lands on the receipt (a GET page), never on a form; a refused step stores its message to
show once. With JavaScript none of this is used: the vote happens on one GET page.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, request, url_for
from werkzeug.wrappers import Response

from hsm_signer.election import Election

from .context import service

COOKIE = "hsm_signer_vote"
LIFETIME = 30 * 60
"""Seconds a draft lasts after its last step (a voter who leaves the computer for longer types the code again)."""
CAST_LIFETIME = 10 * 60
"""Seconds the cast draft lets Back lead to the receipt."""
MAX_COOKIE = 3800  # browsers keep at least 4,096 bytes per cookie, name and attributes included
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


def _key(election_id: str) -> bytes:
    secret = current_app.config["SECRET_KEY"]
    secret = secret.encode() if isinstance(secret, str) else bytes(secret)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_LABEL, info=election_id.encode()).derive(secret)


def _aad(election_id: str) -> bytes:
    return _LABEL + b"\x00" + election_id.encode()


def _encode(draft: Draft, election: Election, expires: int) -> bytes:
    """Compact JSON: options by their index in the contest, so the cookie stays small (no
    choices at all, as after they were shown, is an empty list; a blank ballot is not)."""
    chosen = []
    for contest in election.contests if draft.chosen else ():
        index = {o.id: i for i, o in enumerate(contest.options)}
        chosen.append([index[o] for o in draft.chosen.get(contest.id, ()) if o in index])
    none = [i for i, c in enumerate(election.contests) if c.id in draft.none]
    body = {"s": draft.step, "x": expires, "c": draft.code, "p": chosen, "n": none, "k": draft.checked,
            "e": list(draft.error) if draft.error else None, "b": draft.ballot_id, "w": draft.new}
    return json.dumps(body, separators=(",", ":")).encode()


def _decode(plain: bytes, election: Election, now: float) -> Draft | None:
    try:
        body = json.loads(plain)
        if not isinstance(body, dict) or body["s"] not in STEPS or not isinstance(body["x"], int) or body["x"] <= now:
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
    value = request.cookies.get(COOKIE)
    if not value or len(value) > MAX_COOKIE:
        return None
    try:
        sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        plain = AESGCM(_key(election.id)).decrypt(sealed[:12], sealed[12:], _aad(election.id))
    except (binascii.Error, ValueError, InvalidTag):
        return None
    return _decode(plain, election, service().clock())


def _path(election: Election) -> str:
    return url_for("vote.enter_code", election_id=election.id)


def save(response: Response, election: Election, draft: Draft) -> Response:
    """Set ``draft`` as the response's cookie (replacing any earlier one)."""
    lifetime = CAST_LIFETIME if draft.step == CAST else LIFETIME
    nonce = os.urandom(12)
    expires = int(service().clock()) + lifetime
    sealed = nonce + AESGCM(_key(election.id)).encrypt(nonce, _encode(draft, election, expires), _aad(election.id))
    value = base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")
    if len(value) > MAX_COOKIE:
        raise DraftTooLargeError(f"the draft takes {len(value)} bytes")
    response.set_cookie(COOKIE, value, max_age=lifetime, path=_path(election), secure=current_app.config["BEHIND_TLS"],
                        httponly=True, samesite="Strict")
    return response


def forget(response: Response, election: Election) -> Response:
    """Remove the draft from the browser."""
    response.delete_cookie(COOKIE, path=_path(election), secure=current_app.config["BEHIND_TLS"], httponly=True,
                           samesite="Strict")
    return response
