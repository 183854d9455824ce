"""The voter's pages in plain words, without JavaScript (issue 16): a typo is told from an
unknown code and the field keeps what was typed; a contest's problem is shown in it and
tied to it; "No choice" is explicit and a blank contest is named before casting; times
are shown in the election's time zone with its help line; technical terms are folded away.
"""

from __future__ import annotations

import re

import pytest
from werkzeug.datastructures import MultiDict

from hsm_signer import codes as codes_mod
from hsm_signer.election import Election
from hsm_signer.errors import ConfigError
from hsm_signer.log.leaf import parse_leaf

from servicekit import DEMO_ELECTION
from test_web_vote import ELECTION, change_link, hidden, receipt_link, step, token_of

CONTACT = "Call 0300 123 4567 (9am to 5pm) or email votes@example.org"


def _start(client):
    return token_of(client.get(f"/elections/{ELECTION}/vote").text)


def _typo_of(code: str) -> str:
    """``code`` with one data symbol changed: the check symbol catches every such change."""
    first = code[0]
    return ("1" if first != "1" else "2") + code[1:]


def test_a_typo_is_told_from_an_unknown_code_and_the_field_keeps_what_was_typed(client, codes):
    token = _start(client)
    typo = _typo_of(codes[0])
    page = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": typo, "csrf_token": token})
    assert page.status_code == 403
    assert "This code has a typo" in page.text and "not valid for this election" not in page.text
    field = re.search(r"<input id=\"code\"[^>]*>", page.text, re.S).group(0)
    assert f'value="{typo}"' in field  # kept, to be corrected rather than retyped
    assert 'aria-describedby="code-hint code-error"' in field and 'aria-invalid="true"' in field
    message = re.search(r'<p class="field-error" id="code-error" role="alert"><strong>([^<]+)</strong>', page.text)
    assert message and message.group(1)[0].isupper() and message.group(1).endswith(".")
    assert "Error code" not in page.text.split("<details", 1)[0]  # the internal code is folded away

    unknown = codes_mod.display(codes_mod.new_code())  # well formed, not this election's
    page = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": unknown, "csrf_token": token})
    assert page.status_code == 403 and "This voting code is not valid for this election" in page.text
    assert "typo" not in page.text and f'value="{unknown}"' in page.text

    # The same words from the API (the page's script shows them on the same field).
    answer = client.post(f"/api/v1/elections/{ELECTION}/code-status", json={"code": typo})
    assert answer.status_code == 403 and answer.json["error"] == "invalid_code"
    assert answer.json["message"].startswith("this code has a typo")


def test_a_contest_with_too_many_choices_says_so_in_that_contest_and_keeps_the_choices(client, codes):
    token = _start(client)
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[1], "csrf_token": token})
    page = step(client, f"/elections/{ELECTION}/vote/confirm", MultiDict([
        *hidden(ballot.text, "/vote/confirm"), ("sel-leader", "bob"),
        ("sel-board", "dan"), ("sel-board", "erin"), ("sel-board", "frank")]))
    assert page.status_code == 422
    assert "You chose 3 in \u201cBoard\u201d, but you can choose at most 2 options. Untick 1." in page.text
    board = re.search(r'<fieldset class="contest has-error" data-contest="board"[^>]*>', page.text).group(0)
    assert 'aria-describedby="hint-board problem-board"' in board and 'id="problem-board"' in page.text
    assert 'data-contest="leader" data-max="1"\n          aria-describedby="hint-leader">' in page.text
    assert len(re.findall(r'value="(?:bob|dan|erin|frank)"\s+checked', page.text)) == 4  # nothing lost


def test_no_choice_is_explicit_and_a_blank_contest_is_named_before_casting(client, service, codes):
    token = _start(client)
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[2], "csrf_token": token})
    assert ballot.text.count("No choice (leave this contest blank)") == 2
    both = step(client, f"/elections/{ELECTION}/vote/confirm", MultiDict([
        *hidden(ballot.text, "/vote/confirm"), ("sel-leader", ""), ("sel-leader", "bob")]))
    assert both.status_code == 422 and "You ticked \u201cNo choice\u201d and also chose 1 in \u201cLeader\u201d" in both.text

    confirm = step(client, f"/elections/{ELECTION}/vote/confirm", MultiDict([
        *hidden(ballot.text, "/vote/confirm"), ("sel-leader", ""), ("sel-board", "dan")]))
    assert confirm.status_code == 200
    assert "You have left 1 contest blank: Leader." in confirm.text
    # "Change my choices" brings the explicit "No choice" back ticked.
    change = client.get(change_link(confirm.text))
    assert re.search(r'id="sel-leader--none"[^>]*value="" data-none\s+checked', change.text)
    assert re.search(r'value="dan"\s+checked', change.text)

    cast = step(client, f"/elections/{ELECTION}/vote/cast", MultiDict(hidden(confirm.text, "/vote/cast")))
    assert cast.status_code == 200
    stored = parse_leaf(service.ballots.receipt(receipt_link(cast.text).rsplit("/", 1)[1]).leaf)
    assert dict(stored.selections) == {"leader": (), "board": ("dan",)}


def test_times_are_in_the_elections_time_zone_and_its_help_line_is_on_every_voter_page(service, kit):
    from hsm_signer.testing.service import open_election
    from hsm_signer.web import create_app
    definition = {**DEMO_ELECTION, "id": "summer", "timezone": "Europe/London", "contact": CONTACT,
                  "closes_at": "2030-07-01T16:00:00Z"}
    open_election(service, definition, 2)
    client = create_app(service=service, test_config={"TESTING": True}).test_client()
    home, vote = client.get("/").text, client.get("/elections/summer/vote").text
    for page in (home, vote):
        assert "Monday 1 July 2030 at 5:00pm (BST)" in page and "2030-07-01T16:00:00Z" not in page
        assert CONTACT in page


def test_the_display_fields_are_checked_and_leave_older_definitions_unchanged():
    plain = Election.from_dict(DEMO_ELECTION)
    assert "timezone" not in plain.to_dict() and "contact" not in plain.to_dict()  # same digest as before
    shown = Election.from_dict({**DEMO_ELECTION, "timezone": "Europe/London", "contact": CONTACT})
    assert Election.from_json(shown.to_json()) == shown
    with pytest.raises(ConfigError, match="'Mars/Olympus' is not a time zone"):
        Election.from_dict({**DEMO_ELECTION, "timezone": "Mars/Olympus"})
    with pytest.raises(ConfigError, match="contact must be 1-500 characters"):
        Election.from_dict({**DEMO_ELECTION, "contact": " "})


def test_the_receipt_folds_the_technical_terms_away(client, service, codes):
    receipt = service.ballots.cast(ELECTION, codes[3], {"leader": ["bob"], "board": []}).receipt
    ballot_id = parse_leaf(receipt.leaf).ballot_id
    page = client.get(f"/elections/{ELECTION}/receipts/{ballot_id}").text
    main = page.split('<main id="main">', 1)[1]
    before, folded = main.split('<details class="technical">', 1)
    for term in ("leaf index", "tree size", "checkpoint", "JSON", "hsm-signer verify"):
        assert term not in before, term
    assert "leaf index" in folded and "tree size" in folded
    assert receipt.tracker in before and "Test election" in before
