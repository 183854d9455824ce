"""The voter's pages: enter code → choose → confirm → receipt. Works without JavaScript.

Between steps the code travels only in POST bodies (a hidden field of the next form),
never in a URL, a cookie or a log line; every page that holds it is ``no-store``. The
receipt pages are addressed by the random ballot id, which reveals nothing that the
public bulletin board does not already show.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from flask_babel import ngettext

from hsm_signer.ballots import CodeUsedError, InvalidCodeError, ReceiptPendingError
from hsm_signer.election import BallotError, Election
from hsm_signer.errors import HsmError
from hsm_signer.log.note import b64encode

from .context import open_election, service
from .errors import WebError, expected_error
from .receipts import chosen_view, find_receipt, receipt_view
from .security import code_attempt

bp = Blueprint("vote", __name__)


def _form_code() -> str:
    return request.form.get("code", "")[:64]


def _form_selections(election: Election) -> dict[str, list[str]]:
    """The options ticked per contest; the "No choice" box (an empty value) is not an option."""
    return {c.id: [v for v in request.form.getlist(f"sel-{c.id}") if v] for c in election.contests}


def _said_no_choice(election: Election) -> set[str]:
    """Contests whose "No choice" box was ticked."""
    return {c.id for c in election.contests if "" in request.form.getlist(f"sel-{c.id}")}


def contest_problems(election: Election, chosen: dict[str, list[str]], none: set[str]) -> dict[str, str]:
    """What is wrong in each contest, in words for the voter (empty when the ballot fits)."""
    problems = {}
    for contest in election.contests:
        picked = chosen.get(contest.id, [])
        if contest.id in none and picked:
            problems[contest.id] = _("You ticked \u201cNo choice\u201d and also chose %(num)d in \u201c%(contest)s\u201d. "
                                     "Untick one of them.", num=len(picked), contest=contest.title)
        elif len(picked) > contest.max_choices:
            problems[contest.id] = ngettext(
                "You chose %(chosen)d in \u201c%(contest)s\u201d, but you can choose at most %(num)d option. Untick %(extra)d.",
                "You chose %(chosen)d in \u201c%(contest)s\u201d, but you can choose at most %(num)d options. Untick %(extra)d.",
                contest.max_choices, chosen=len(picked), contest=contest.title, extra=len(picked) - contest.max_choices)
    return problems


def _sealing_for(election: Election) -> dict | None:
    """What the page's script needs to seal a ballot in the browser (None without a sealing key)."""
    box = service().ballots
    return {"key": b64encode(box.sealing_key), "size": box.padded_size(election)} if box.sealing_key else None


def _page(template: str, error: WebError, **context):
    """``template`` showing ``error``, with its status and headers (e.g. Retry-After)."""
    return render_template(template, error=error, **context), error.status, error.headers


@bp.get("/")
def index():
    return render_template("index.html", elections=service().storage.list_elections())


@bp.get("/elections/<election_id>/vote")
def enter_code(election_id: str):
    election = open_election(election_id).election
    return render_template("vote_code.html", election=election, sealing=_sealing_for(election), chosen={}, no_choice=set())


@bp.post("/elections/<election_id>/vote/ballot")
@code_attempt
def ballot(election_id: str):
    """Check the code before the voter fills in the ballot; show the ballot form."""
    election = open_election(election_id).election
    code = _form_code()
    try:
        status = service().ballots.code_status(election_id, code)
    except (InvalidCodeError, HsmError) as exc:
        # The page keeps what the voter typed, so a typo is corrected, not retyped.
        return _page("vote_code.html", expected_error(exc), election=election, typed=code, sealing=None)
    if status.status != "unused":
        how = "by post" if status.status == "postal" else "online"
        error = WebError("code_used", f"this voting code has already been used {how}")
        return _page("vote_code.html", error, election=election, used=True, typed=code, sealing=None)
    changing = "change" in request.form
    chosen = _form_selections(election) if changing else {}
    none = _said_no_choice(election) if changing else set()
    # With a sealing key, the page's script validates and seals the ballot in the browser
    # (the server never sees the vote); without JavaScript the form below still works.
    return render_template("vote_ballot.html", election=election, code=code, chosen=chosen, no_choice=none,
                           sealing=_sealing_for(election))


@bp.post("/elections/<election_id>/vote/confirm")
def confirm(election_id: str):
    """Show the choices back before they count; nothing is stored yet."""
    election = open_election(election_id).election
    code, chosen, none = _form_code(), _form_selections(election), _said_no_choice(election)
    problems = contest_problems(election, chosen, none)
    try:
        if problems:
            raise WebError("invalid_ballot", "please correct the choices marked below")
        clean = election.validate_selections(chosen)
    except (BallotError, WebError) as exc:
        return _page("vote_ballot.html", expected_error(exc), election=election, code=code, chosen=chosen,
                     no_choice=none, problems=problems, sealing=None)
    blank = [c.title for c in election.contests if not clean.get(c.id)]
    return render_template("vote_confirm.html", election=election, code=code, chosen=clean, blank=blank,
                           no_choice=none)


@bp.post("/elections/<election_id>/vote/cast")
@code_attempt
def cast(election_id: str):
    election = open_election(election_id).election
    code, chosen = _form_code(), _form_selections(election)
    try:
        result = service().ballots.cast(election_id, code, chosen)
    except ReceiptPendingError as exc:
        return _page("pending.html", expected_error(exc), election=election, ballot_id=exc.ballot_id)
    except (InvalidCodeError, CodeUsedError, BallotError, HsmError) as exc:
        # Back to the confirmation page, with the reason and the chance to try again.
        return _page("vote_confirm.html", expected_error(exc), election=election, code=code, chosen=chosen)
    # The receipt, answered to this POST with what the voter just chose: the choices are in
    # no URL, no receipt and no later page (the receipt page itself shows only the tracker).
    page = render_template("receipt.html", view=receipt_view(result.receipt), chosen=chosen_view(election, chosen))
    return page, 201 if result.new else 200


# --- receipts ----------------------------------------------------------------------------

@bp.get("/elections/<election_id>/receipts/<ballot_id>")
def receipt(election_id: str, ballot_id: str):
    return render_template("receipt.html", view=receipt_view(find_receipt(election_id, ballot_id)))


@bp.get("/elections/<election_id>/receipts/<ballot_id>/print")
def receipt_print(election_id: str, ballot_id: str):
    return render_template("receipt_print.html", view=receipt_view(find_receipt(election_id, ballot_id)))


@bp.get("/elections/<election_id>/receipts/<ballot_id>/receipt.json")
def receipt_download(election_id: str, ballot_id: str):
    found = find_receipt(election_id, ballot_id)
    name = f"receipt-{found.election}-{found.leaf_index}.json"
    return Response(found.to_json(), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
