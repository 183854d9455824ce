""""Check my code": is my code unused, used online or used by post? Works without JavaScript.

The code arrives in a POST body only. The answer is only unused, used online or used by
post: a code never leads to its ballot, receipt or selections (whoever holds a voter's code,
a household member or a mailing house, learns nothing of the vote).
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from hsm_signer.ballots import InvalidCodeError
from hsm_signer.errors import HsmError

from .context import election_record, service
from .errors import expected_error
from .security import code_attempt

bp = Blueprint("check", __name__)


@bp.get("/check")
def form():
    return render_template("check.html", elections=service().storage.list_elections(),
                           selected=request.args.get("election", ""))


@bp.post("/check")
@code_attempt
def result():
    elections = service().storage.list_elections()
    election_id = request.form.get("election", "")
    record = election_record(election_id)
    try:
        status = service().ballots.code_status(election_id, request.form.get("code", "")[:64])
    except (InvalidCodeError, HsmError) as exc:
        error = expected_error(exc)
        return (render_template("check.html", elections=elections, selected=election_id, error=error,
                                typed=request.form.get("code", "")[:64]),
                error.status, error.headers)
    return render_template("check_result.html", election=record.election, status=status)
