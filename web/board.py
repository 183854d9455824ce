"""The public bulletin board: each election's state, latest signed checkpoint, entries,
and once the poll is closed and tallied, the signed tally and the election record.

Only what a signed checkpoint covers is shown, page by page, so what anyone reads here
can be checked against the signed log; the tally is shown only after its signature
verified with the published tally key. Nothing here can identify a voter: entries carry
no code or identity. During the poll the board shows no selections at all (so no running
result): each entry is its type and its ballot tracker, which a voter can search for.

The words are the voter's language (English or Welsh, web/i18n.py): views hand the
templates facts, never English sentences, and the few messages made here go through gettext.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, render_template, request, send_file
from flask_babel import gettext as _

from hsm_signer.canonical import loads_strict
from hsm_signer.errors import FormatError
from hsm_signer.log.leaf import parse_leaf
from hsm_signer.log.tracker import normalise_tracker, tracker_of
from hsm_signer.tally import tally_summary
from hsm_signer.record import publish_record

from .context import election_record, service, signed_size
from .errors import WebError

bp = Blueprint("board", __name__, url_prefix="/board")

PAGE = 50
TRACKER_EXAMPLE = "3f9a-12bc-77de-0a41"
#: Where the exported record archives are kept, beside the configuration.
PUBLISHED_DIR = "published-records"


@bp.get("/")
def index():
    rows = [(r, signed_size(r.election.id)[0]) for r in service().storage.list_elections()]
    return render_template("board_index.html", rows=rows)


def _entry(raw: bytes) -> tuple[str, str] | None:
    """(type, tracker) of an entry: never its selections, sealed or not."""
    try:
        return parse_leaf(raw).type, tracker_of(raw)
    except FormatError:
        return None  # shown as unreadable; the audit command reports it properly


def _find_tracker(election_id: str, typed: str) -> tuple[str, int | None, str | None]:
    """(tracker as typed, its leaf index or None, a problem to show or None)."""
    try:
        tracker = normalise_tracker(typed[:64])
    except FormatError:
        return typed[:64], None, _("A ballot tracker has 16 letters and digits (0 to 9 and a to f) in four groups, "
                                   "like %(example)s. Check what you typed against your receipt.",
                                   example=TRACKER_EXAMPLE)
    found = service().storage.find_leaves(election_id, bytes.fromhex(tracker.replace("-", "")), limit=2)
    if not found:
        return tracker, None, _("No ballot with the tracker %(tracker)s is on the board yet. A ballot appears here "
                                "a few seconds after it is cast, once the log that holds it is signed.",
                                tracker=tracker)
    return tracker, found[0], None


@dataclass(frozen=True)
class Opened:
    """What one entry opened to after the signed tally: the chosen option titles per
    contest title (an empty list: no choice), or why it could not be counted."""

    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    invalid_reason: str | None = None  # the core's English reason; the page marks it lang="en"


def _opened(election_id: str, election, start: int, end: int) -> dict[int, Opened]:
    """After the signed tally: what each entry of the page opened to (openings.jsonl)."""
    store = service().storage
    if start >= end:
        return {}
    titles = {c.id: {o.id: o.title for o in c.options} for c in election.contests}
    shown = {}
    for line in store.openings(election_id, start, end):
        try:
            opening = loads_strict(bytes(line).rstrip(b"\n"))
            if opening["status"] == "valid":
                chosen = opening["selections"]
                shown[opening["index"]] = Opened(choices=tuple(
                    (c.title, tuple(titles[c.id].get(o, o) for o in chosen.get(c.id, []))) for c in election.contests))
            else:
                shown[opening["index"]] = Opened(invalid_reason=str(opening["reason"]))
        except (FormatError, KeyError, TypeError, AttributeError):
            continue  # the audit command reports a malformed opening properly
    return shown


def _page_start(raw: str, size: int) -> int:
    """The first index of the page holding ``start`` (clamped to the signed tree)."""
    start = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0
    start = min(start, max(size - 1, 0))
    return start - start % PAGE


@bp.get("/<election_id>")
def election(election_id: str):
    record = election_record(election_id)
    size, note = signed_size(election_id)
    search = request.args.get("tracker")
    tracker, found, problem = _find_tracker(election_id, search) if search else (None, None, None)
    start = _page_start(str(found) if found is not None else request.args.get("start", ""), size)
    end = min(start + PAGE, size)
    leaves = service().storage.entries(election_id, start, end) if start < end else []
    entries = [(start + i, _entry(raw)) for i, raw in enumerate(leaves)]
    tally_note = service().storage.get_tally(election_id)
    opened = _opened(election_id, record.election, start, end) if tally_note else {}
    tally = tally_summary(tally_note, service().bundle, record.election) if tally_note else None
    return render_template(
        "board_election.html", record=record, election=record.election, size=size, note=note, entries=entries,
        start=start, end=end, page=PAGE, example=TRACKER_EXAMPLE, counts=service().storage.count_codes(election_id), tally=tally,
        tracker=tracker, found=found, problem=problem, opened=opened,
        previous=start - PAGE if start > 0 else None, following=end if end < size else None)


@bp.get("/<election_id>/tally.txt")
def tally_note(election_id: str):
    """The signed tally note itself, for ``openssl`` and ``hsm-signer verify --checkpoint``."""
    election_record(election_id)
    note = service().storage.get_tally(election_id)
    if note is None:
        raise WebError("tally_not_found")
    return Response(note, content_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{election_id}-tally.txt"'})


@bp.get("/<election_id>/record.zip")
def record_download(election_id: str):
    """The whole election record (definition, keys, entries, checkpoints, tally, manifest)."""
    election_record(election_id)
    if service().storage.get_tally(election_id) is None:
        raise WebError("tally_not_found", "the election record is published once the tally is signed")
    svc = service()
    archive = publish_record(svc.storage, svc.config.key_bundle, election_id, svc.config.base_dir / PUBLISHED_DIR)
    return send_file(archive, mimetype="application/zip", as_attachment=True,
                     download_name=f"{election_id}-record.zip")
