"""The public bulletin board: each election's state, latest signed checkpoint and entries.

Only what a signed checkpoint covers is shown, page by page, so what anyone reads here
can be checked against the signed log. (The tally and election record pages join this
blueprint later.) Nothing here can identify a voter: entries carry no code or identity.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request

from hsm_signer.errors import FormatError
from hsm_signer.log.leaf import Leaf

from .context import election_record, service, signed_size

bp = Blueprint("board", __name__, url_prefix="/board")

PAGE = 50


@bp.get("/")
def index():
    rows = [(r, signed_size(r.election.id)[0]) for r in service().storage.list_elections()]
    return render_template("board_index.html", rows=rows)


def _leaf(raw: bytes) -> Leaf | None:
    try:
        return Leaf.from_bytes(raw)
    except FormatError:
        return None  # shown as unreadable; the audit command reports it properly


def _page_start(raw: str, size: int) -> int:
    """The first index of the page holding ``start`` (clamped to the signed tree)."""
    start = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0
    start = min(start, max(size - 1, 0))
    return start - start % PAGE


@bp.get("/<election_id>")
def election(election_id: str):
    record = election_record(election_id)
    size, note = signed_size(election_id)
    start = _page_start(request.args.get("start", ""), size)
    end = min(start + PAGE, size)
    leaves = service().storage.entries(election_id, start, end) if start < end else []
    entries = [(start + i, _leaf(raw)) for i, raw in enumerate(leaves)]
    return render_template(
        "board_election.html", record=record, size=size, note=note, entries=entries, start=start, end=end,
        page=PAGE, counts=service().storage.count_codes(election_id),
        previous=start - PAGE if start > 0 else None, following=end if end < size else None)
