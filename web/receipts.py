"""Showing a receipt: lookup by ballot id, the verify link its QR code carries, the QR itself.

A receipt holds nothing secret (the sealed leaf, the proof and the checkpoint are all
public on the bulletin board), so it is addressed by its random ballot id, never by the
code. It names the ballot by its short tracker and never shows selections: not in the
page, the file, its URL or its QR code (a receipt of a sealed ballot has none to show, and
one of an earlier clear-text election is not the place to repeat a vote).

The QR code links to ``/verify?e=<election>&i=<leaf index>&n=<tree size>&r=<root>``:
enough for the verification page to fetch the leaf, the inclusion proof and the signed
checkpoint of that size from the API, and ``r`` (the checkpoint's root hash,
unpadded base64url) pins the exact checkpoint the voter was given.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import segno
from flask import url_for

from hsm_signer.log.checkpoint import Checkpoint
from hsm_signer.log.leaf import SealedLeaf, parse_leaf
from hsm_signer.log.note import parse_note
from hsm_signer.log.receipt import Receipt

from .context import service
from .errors import WebError

BALLOT_ID = re.compile(r"[0-9a-f]{32}")


def find_receipt(election_id: str, ballot_id: str) -> Receipt:
    """The signed receipt of a ballot of this election; 404 or 503 ``receipt_pending``."""
    if not BALLOT_ID.fullmatch(ballot_id):
        raise WebError("receipt_not_found")
    storage = service().storage
    entry = storage.entry_by_ballot(ballot_id)
    if entry is None or entry.election != election_id:
        raise WebError("receipt_not_found")
    receipt = service().ballots.receipt(ballot_id)
    if receipt is None:
        raise WebError("receipt_pending", headers={"Retry-After": "2"}, ballot_id=ballot_id)
    return receipt


def root_b64url(checkpoint_note: str) -> str:
    root = Checkpoint.from_text(parse_note(checkpoint_note)[0]).root_hash
    return base64.urlsafe_b64encode(root).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class ReceiptView:
    """What the receipt templates show."""

    receipt: Receipt
    ballot_id: str
    tracker: str
    sealed: bool  # a sealed ballot (leaf v2); False for an earlier clear-text election
    tree_size: int
    verify_url: str
    qr_data_uri: str
    election_title: str


def receipt_view(receipt: Receipt) -> ReceiptView:
    leaf = parse_leaf(receipt.leaf)
    checkpoint = Checkpoint.from_text(parse_note(receipt.checkpoint)[0])
    # From the configured public base URL, never the request's Host header (which a client
    # chooses) nor its scheme (plain HTTP behind a TLS proxy).
    verify_url = service().config.server.base_url + url_for(
        "verify.page", e=receipt.election, i=receipt.leaf_index, n=checkpoint.size, r=root_b64url(receipt.checkpoint))
    qr = segno.make(verify_url, error="m").svg_data_uri(scale=4, border=2)
    title = service().storage.get_election(receipt.election).election.title
    return ReceiptView(receipt, leaf.ballot_id, receipt.tracker, isinstance(leaf, SealedLeaf), checkpoint.size,
                       verify_url, qr, title)


def chosen_view(election, chosen: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """(contest title, option titles) of what the voter just chose, for the page that
    answers their cast (never stored, never in a receipt or a URL)."""
    rows = []
    for contest in election.contests:
        titles = {o.id: o.title for o in contest.options}
        rows.append((contest.title, [titles.get(o, o) for o in chosen.get(contest.id, ())]))
    return rows
