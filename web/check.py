""""Check my code": is my code unused, used online or used by post? Works without JavaScript.

The code arrives in a POST body only, answered by a 303 (post/redirect/get, so Back and
Reload never resubmit it): to the result page, or back to the form with the message and
what was typed, both carried by a sealed cookie (:mod:`.sealed_cookie`) that holds the
election and the answer, or the refusal and the typed text (shown once); never the code
after a successful check. The answer is only unused, used online or used by post: a code
never leads to its ballot, receipt or selections (whoever holds a voter's code, a
household member or a mailing house, learns nothing of the vote).
"""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for

from hsm_signer.ballots import InvalidCodeError
from hsm_signer.errors import HsmError

from . import sealed_cookie
from .context import election_record, service
from .errors import expected_error, restored
from .security import code_attempt

bp = Blueprint("check", __name__)

COOKIE = "hsm_signer_check"
LIFETIME = 5 * 60
"""Seconds the result page can be reloaded (a refusal is shown once)."""
_PURPOSE = b"hsm-signer/check-answer/v1"
_STATUSES = ("unused", "online", "postal")


def _path() -> str:
    return url_for("check.form")


@bp.get("/check")
def form():
    elections = service().storage.list_elections()
    answer = sealed_cookie.load(COOKIE, _PURPOSE, "")
    if answer is None or not isinstance(answer.get("r"), list):
        return render_template("check.html", elections=elections, selected=request.args.get("election", ""))
    # A refused code, said once, with what was typed kept in the field.
    error = restored(*[str(part) for part in (answer["r"] + ["", ""])[:2]])
    page = render_template("check.html", elections=elections, selected=str(answer.get("e", "")), error=error,
                           typed=str(answer.get("c", "")))
    return sealed_cookie.forget(make_response(page, error.status, error.headers), COOKIE, path=_path())


@bp.post("/check")
@code_attempt
def result():
    election_id = request.form.get("election", "")
    election_record(election_id)  # 404 for an election that does not exist
    typed = request.form.get("code", "")[:64]
    try:
        status = service().ballots.code_status(election_id, typed)
    except (InvalidCodeError, HsmError) as exc:
        error = expected_error(exc)
        response = redirect(url_for("check.form", election=election_id), code=303)
        return sealed_cookie.save(response, COOKIE, _PURPOSE, "", {"e": election_id, "c": typed,
                                                                   "r": [error.code, error.message]},
                                  path=_path(), lifetime=LIFETIME)
    response = redirect(url_for("check.answer"), code=303)
    return sealed_cookie.save(response, COOKIE, _PURPOSE, "", {"e": election_id, "s": status.status},
                              path=_path(), lifetime=LIFETIME)


@bp.get("/check/result")
def answer():
    found = sealed_cookie.load(COOKIE, _PURPOSE, "")
    if found is None or found.get("s") not in _STATUSES:
        return redirect(url_for("check.form"), code=303)  # expired (or never checked): check again
    record = election_record(str(found.get("e", "")))
    return render_template("check_result.html", election=record.election, status=found["s"])
