"""The voter's pages: enter code → choose → confirm → receipt. Works without JavaScript.

With JavaScript the whole vote happens on the code page (js/vote-page.js). Without it,
each step is a form POST answered by a 303 to the next step's GET page
(post/redirect/get), so Back and Reload never resubmit a form. Between steps the code and
the choices travel only in the encrypted draft cookie of :mod:`.drafts`, never in a URL
or a log line; every page is ``no-store``. The receipt pages are addressed by the random
ballot id, which reveals nothing that the public bulletin board does not already show.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.wrappers import Response

from hsm_signer.ballots import CodeUsedError, InvalidCodeError, ReceiptPendingError
from hsm_signer.election import BallotError, Election, instant
from hsm_signer.errors import HsmError
from hsm_signer.log.note import b64encode

from . import drafts
from .context import election_record, open_election, service
from .errors import ERRORS, WebError, expected_error, restored
from .receipts import chosen_view, find_receipt, receipt_view
from .security import code_attempt
from .wording import when

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


def _voting(election_id: str) -> Election:
    """The election if voters can vote now: its poll open (404 / 409 ``poll_not_open``) and
    the time within ``opens_at`` .. ``closes_at`` on the service clock, said with the time."""
    election = open_election(election_id).election
    now = service().clock()
    if election.opens_at is not None and now < instant(election.opens_at):
        raise WebError("poll_not_open", _("the poll for this election opens on %(when)s",
                                          when=when(election.opens_at, election)))
    if election.closes_by(now):
        raise WebError("poll_not_open", _("the poll for this election closed on %(when)s",
                                          when=when(election.closes_at, election)))
    return election


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
    """Step 1. A refused code comes back here once, with its message and what was typed."""
    election = _voting(election_id)
    draft = drafts.load(election)
    sealing = _sealing_for(election)
    if draft is not None and draft.step == drafts.CODE and draft.error:
        error = restored(*draft.error)
        # An ended session is said above the form: nothing is wrong with what the voter typed.
        shown = {"notice": error} if error.code == "draft_expired" else {"error": error}
        page = render_template("vote_code.html", election=election, typed=draft.code, used=error.code == "code_used",
                               sealing=sealing, chosen={}, no_choice=set(), **shown)
        return drafts.forget(make_response(page, error.status, error.headers), election)
    # Back from a later step: the code the voter gave is still in the field.
    typed = draft.code if draft is not None and draft.step in (drafts.BALLOT, drafts.CONFIRM) else ""
    return render_template("vote_code.html", election=election, typed=typed, sealing=sealing, chosen={},
                           no_choice=set())


@bp.post("/elections/<election_id>/vote/ballot")
@code_attempt
def ballot(election_id: str):
    """Check the code before the voter fills in the ballot; on to the ballot page (or back, with why)."""
    election = _voting(election_id)
    code = _form_code()
    try:
        status = service().ballots.code_status(election_id, code)
        if status.status != "unused":
            how = "by post" if status.status == "postal" else "online"
            raise WebError("code_used", f"this voting code has already been used {how}")
    except (InvalidCodeError, HsmError, WebError) as exc:
        # The page keeps what the voter typed, so a typo is corrected, not retyped.
        return _to(drafts.CODE, election, drafts.Draft(drafts.CODE, code=code, error=_storable(exc)))
    earlier = drafts.load(election)
    if earlier is not None and earlier.step in (drafts.BALLOT, drafts.CONFIRM) and earlier.code == code:
        # Back to the code page and on again with the same code: the choices made are kept.
        return _to(drafts.BALLOT, election, drafts.Draft(drafts.BALLOT, code=code, chosen=earlier.chosen,
                                                         none=earlier.none))
    return _to(drafts.BALLOT, election, drafts.Draft(drafts.BALLOT, code=code))


@bp.get("/elections/<election_id>/vote/ballot")
def ballot_page(election_id: str):
    """Step 2: the ballot form, with the choices made so far (and what is wrong with them)."""
    election = _voting(election_id)
    draft = _draft_for(election, drafts.BALLOT, drafts.CONFIRM)
    if not isinstance(draft, drafts.Draft):
        return draft
    problems = contest_problems(election, draft.chosen, set(draft.none)) if draft.checked else {}
    return _step_page("vote_ballot.html", election, draft, chosen=draft.chosen, no_choice=draft.none,
                      problems=problems, sealing=None)


@bp.post("/elections/<election_id>/vote/confirm")
def confirm(election_id: str):
    """Take the ballot form; on to the confirmation page, or back to the form with what to correct.
    Nothing is stored on the server yet."""
    election = _voting(election_id)
    draft = _draft_for(election, drafts.BALLOT, drafts.CONFIRM)
    if not isinstance(draft, drafts.Draft):
        return draft
    chosen, none = _form_selections(election), _said_no_choice(election)
    _known_options_only(election, chosen)
    try:
        if contest_problems(election, chosen, none):
            raise WebError("invalid_ballot", "please correct the choices marked below")
        clean = election.validate_selections(chosen)
    except (BallotError, WebError) as exc:
        return _to(drafts.BALLOT, election, drafts.Draft(drafts.BALLOT, code=draft.code, chosen=chosen,
                                                            none=frozenset(none), checked=True, error=_storable(exc)))
    return _to(drafts.CONFIRM, election, drafts.Draft(drafts.CONFIRM, code=draft.code, chosen=clean,
                                                          none=frozenset(none)))


@bp.get("/elections/<election_id>/vote/confirm")
def confirm_page(election_id: str):
    """Step 3: the choices shown back before they count."""
    election = _voting(election_id)
    draft = _draft_for(election, drafts.CONFIRM)
    if not isinstance(draft, drafts.Draft):
        return draft
    blank = [c.title for c in election.contests if not draft.chosen.get(c.id)]
    return _step_page("vote_confirm.html", election, draft, chosen=draft.chosen, blank=blank, no_choice=draft.none)


@bp.post("/elections/<election_id>/vote/cast")
@code_attempt
def cast(election_id: str):
    """Cast what the confirmation page showed (from the draft, not from the form); on to the receipt."""
    election = _voting(election_id)
    draft = _draft_for(election, drafts.CONFIRM)
    if not isinstance(draft, drafts.Draft):
        return draft
    try:
        result = service().ballots.cast(election_id, draft.code, draft.chosen)
    except ReceiptPendingError as exc:
        return _to(drafts.CAST, election, drafts.Draft(drafts.CAST, ballot_id=exc.ballot_id, chosen=draft.chosen,
                                                       new=True))
    except (InvalidCodeError, CodeUsedError, BallotError, HsmError) as exc:
        # Back to the confirmation page, with the reason and the chance to try again.
        return _to(drafts.CONFIRM, election, replace(draft, error=_storable(exc)))
    return _to(drafts.CAST, election, drafts.Draft(drafts.CAST, ballot_id=result.ballot_id, chosen=draft.chosen,
                                                   new=result.new))


@bp.get("/elections/<election_id>/vote/cast")
def cast_page(election_id: str):
    """After casting: the receipt, with what the voter chose shown this once (no URL, receipt
    or later page holds the choices; the permanent receipt page shows only the tracker)."""
    election = election_record(election_id).election  # the receipt stays reachable after the close
    draft = _draft_for(election, drafts.CAST)
    if not isinstance(draft, drafts.Draft):
        return draft
    try:
        view = receipt_view(find_receipt(election_id, draft.ballot_id))
    except WebError as exc:
        if exc.code != "receipt_pending":
            raise
        # Stored but not yet signed: this page is a GET, so Reload is the way to wait.
        return _page("pending.html", exc, election=election, ballot_id=draft.ballot_id)
    chosen = chosen_view(election, draft.chosen) if draft.chosen else None
    page = render_template("receipt.html", view=view, chosen=chosen, after_cast=True,
                           cast_again=not draft.new)
    return _shown(make_response(page), election, draft)


# --- the steps' plumbing -------------------------------------------------------------------

_STEP_PAGES = {drafts.CODE: "vote.enter_code", drafts.BALLOT: "vote.ballot_page", drafts.CONFIRM: "vote.confirm_page",
               drafts.CAST: "vote.cast_page"}


def _to(step: str, election: Election, draft: drafts.Draft) -> Response:
    """303 to the page of ``step``, with ``draft`` in the cookie (post/redirect/get)."""
    response = redirect(url_for(_STEP_PAGES[step], election_id=election.id), code=303)
    try:
        return drafts.save(response, election, draft)
    except drafts.DraftTooLargeError:
        raise WebError("invalid_ballot", "this ballot has too many choices to be filled in without JavaScript; "
                                         "turn JavaScript on, or vote by post") from None


def _draft_for(election: Election, *steps: str) -> drafts.Draft | Response:
    """The draft if the voter is at one of ``steps``; else a redirect to where they are
    (the receipt after a cast, the code page when there is no draft or it expired)."""
    draft = drafts.load(election)
    if draft is not None and draft.step in steps:
        return draft
    if draft is not None and draft.step in (drafts.CAST, drafts.BALLOT, drafts.CONFIRM):
        return redirect(url_for(_STEP_PAGES[draft.step], election_id=election.id), code=303)
    # No draft: it expired, the browser refuses cookies, or the voter came straight here.
    expired = drafts.Draft(drafts.CODE, error=("draft_expired", ERRORS["draft_expired"][1]))
    return _to(drafts.CODE, election, expired)


def _step_page(template: str, election: Election, draft: drafts.Draft, **context) -> Response:
    """A step's page from its draft: with the refusal the draft carries (its status and
    headers too) the one time it is shown."""
    error = restored(*draft.error) if draft.error else None
    page = render_template(template, election=election, error=error, **context)
    response = make_response(page, error.status, error.headers) if error else make_response(page)
    return _shown(response, election, draft)


def _shown(response: Response, election: Election, draft: drafts.Draft) -> Response:
    """``response``, with the draft's one-time parts dropped once they were shown."""
    if draft.error is None and not (draft.step == drafts.CAST and draft.chosen):
        return response
    return drafts.save(response, election, draft.shown())


def _storable(exc: Exception) -> tuple[str, str]:
    """A refusal as (error code, message): what a draft keeps to show on the next page."""
    error = expected_error(exc)
    return error.code, error.message


def _known_options_only(election: Election, chosen: dict[str, list[str]]) -> None:
    """A browser sends only the form's own values: anything else is a forged request (422)."""
    for contest in election.contests:
        known = {o.id for o in contest.options}
        unknown = [o for o in chosen.get(contest.id, ()) if o not in known]
        if unknown or len(chosen.get(contest.id, ())) > len(known):
            raise WebError("invalid_ballot", "the ballot form sent an option this election does not have")


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
