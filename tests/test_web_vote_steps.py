"""The voting steps without JavaScript: post/redirect/get, and the draft cookie between steps.

Every POST of the vote answers 303 with the next page to GET, so Back and Reload land on
GET pages and never resubmit a form (issue 16). What a voter gave so far lives in one
cookie, encrypted under the session secret and bound to the election (web/drafts.py):
these tests read it back the way the app does, tamper with it, move it to another
election, let it expire on a clock they control, and check that after a cast it holds no
code, and once the receipt was shown, no choices.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import re

import pytest
from werkzeug.datastructures import MultiDict

from hsm_signer.web import create_app, drafts

from test_web_vote import ELECTION, change_link, hidden, receipt_link, token_of

VOTE = f"/elections/{ELECTION}/vote"


@pytest.fixture
def clock():
    return [1_900_000_000.0]


@pytest.fixture
def app(service, clock):
    timed = copy.copy(service)
    timed.clock = lambda: clock[0]  # the draft's expiry is read on this clock
    return create_app(service=timed, test_config={"TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


def _post(client, path, data):
    """One step's POST: it must be a 303 to a GET page of the vote."""
    answer = client.post(path, data=data)
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"].startswith(VOTE)
    return answer


def _draft(app, client) -> drafts.Draft | None:
    """The draft in the client's cookie, read as the app reads it."""
    cookie = client.get_cookie(drafts.COOKIE, path=VOTE)
    if cookie is None:
        return None
    with app.test_request_context(VOTE, headers={"Cookie": f"{drafts.COOKIE}={cookie.value}"}):
        return drafts.load(app.extensions["hsm_signer"].service.storage.get_election(ELECTION).election)


def _to_confirmation(client, code, choices):
    token = token_of(client.get(VOTE).text)
    ballot = client.get(_post(client, f"{VOTE}/ballot", {"code": code, "csrf_token": token}).headers["Location"])
    confirm = _post(client, f"{VOTE}/confirm", MultiDict([*hidden(ballot.text, "/vote/confirm"), *choices]))
    return token, client.get(confirm.headers["Location"])


def test_every_step_answers_a_post_with_a_redirect_and_reloading_a_page_changes_nothing(service, client, codes):
    token, confirm = _to_confirmation(client, codes[0], [("sel-leader", "bob")])
    for page in (f"{VOTE}/ballot", f"{VOTE}/confirm", f"{VOTE}/confirm"):  # Back, Forward, Reload
        again = client.get(page)
        assert again.status_code == 200 and again.headers["Cache-Control"] == "no-store"
    assert service.storage.count_codes(ELECTION)["online"] == 0  # nothing counts before "Cast"

    cast = _post(client, f"{VOTE}/cast", MultiDict(hidden(confirm.text, "/vote/cast")))
    assert cast.headers["Location"] == f"{VOTE}/cast"
    first = client.get(f"{VOTE}/cast")
    assert first.status_code == 200 and "You chose" in first.text and "Bob" in first.text
    # Back to any step (or the cast form sent again from a second tab) leads to the receipt,
    # without the choices, and casts nothing again.
    for page in (f"{VOTE}/confirm", f"{VOTE}/ballot"):
        back = client.get(page)
        assert back.status_code == 303 and back.headers["Location"] == f"{VOTE}/cast"
    resent = _post(client, f"{VOTE}/cast", {"csrf_token": token})
    landed = client.get(resent.headers["Location"])
    assert receipt_link(landed.text) == receipt_link(first.text)
    assert "You chose" not in landed.text and "Bob" not in landed.text
    assert service.storage.count_codes(ELECTION)["online"] == 1 and service.storage.tree_size(ELECTION) == 1
    # The code page is a fresh start (another member of the household votes with their code).
    fresh = client.get(VOTE)
    assert fresh.status_code == 200 and 'value=""' in fresh.text


def test_the_draft_cookie_is_sealed_http_only_strict_and_limited_to_the_vote(app, client, codes):
    code = codes[1]
    token = token_of(client.get(VOTE).text)
    answer = _post(client, f"{VOTE}/ballot", {"code": code, "csrf_token": token})
    set_cookie = [v for v in answer.headers.getlist("Set-Cookie") if v.startswith(drafts.COOKIE + "=")][0]
    for attribute in ("HttpOnly", "SameSite=Strict", f"Path={VOTE}", f"Max-Age={drafts.LIFETIME}"):
        assert attribute in set_cookie, attribute
    assert "Secure" not in set_cookie  # this test app is not behind TLS (test_web_security checks Secure)
    value = client.get_cookie(drafts.COOKIE, path=VOTE).value
    compact = code.replace("-", "")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert compact.encode() not in raw and compact not in value and b'"c"' not in raw  # ciphertext only
    assert _draft(app, client).code == code  # ... that only this app opens

    _, confirm = _to_confirmation(client, code, [("sel-leader", "carol")])
    assert _draft(app, client).step == drafts.CONFIRM
    client.get(_post(client, f"{VOTE}/cast", MultiDict(hidden(confirm.text, "/vote/cast"))).headers["Location"])
    after = _draft(app, client)
    assert after.step == drafts.CAST and after.code == "" and after.chosen == {}  # no code; choices shown once
    assert re.fullmatch(r"[0-9a-f]{32}", after.ballot_id)


def test_a_tampered_foreign_or_missing_draft_starts_again_at_the_code(app, client, service, codes):
    _to_confirmation(client, codes[2], [("sel-leader", "alice")])
    value = client.get_cookie(drafts.COOKIE, path=VOTE).value
    flipped = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
    client.set_cookie(drafts.COOKIE, flipped, path=VOTE)
    refused = client.get(f"{VOTE}/confirm")
    assert refused.status_code == 303 and refused.headers["Location"] == VOTE
    page = client.get(VOTE)
    assert page.status_code == 400 and "Your voting session has ended" in page.text
    assert 'aria-invalid' not in page.text and 'id="code-error"' not in page.text  # nothing wrong with the field
    assert client.get(VOTE).status_code == 200  # said once

    # A draft sealed for this election means nothing for another one.
    client.set_cookie(drafts.COOKIE, value, path=VOTE)
    election = service.storage.get_election(ELECTION).election
    other = dataclasses.replace(election, id="another-election")
    with app.test_request_context(VOTE, headers={"Cookie": f"{drafts.COOKIE}={value}"}):
        assert drafts.load(election) is not None and drafts.load(other) is None

    # Straight to "Cast" with no draft at all: nothing is cast.
    client.delete_cookie(drafts.COOKIE, path=VOTE)
    token = token_of(client.get(VOTE).text)
    assert _post(client, f"{VOTE}/cast", {"csrf_token": token}).headers["Location"] == VOTE
    assert service.storage.count_codes(ELECTION)["online"] == 0


def test_a_draft_expires_after_its_lifetime_on_the_service_clock(client, clock, service, codes):
    _to_confirmation(client, codes[3], [("sel-leader", "alice")])
    clock[0] += drafts.LIFETIME - 1
    assert client.get(f"{VOTE}/confirm").status_code == 200
    clock[0] += 2
    expired = client.get(f"{VOTE}/confirm")
    assert expired.status_code == 303 and expired.headers["Location"] == VOTE
    assert "Your voting session has ended" in client.get(VOTE).text


def test_changing_the_choices_and_a_forged_option(client, service, codes):
    token, confirm = _to_confirmation(client, codes[4], [("sel-board", "dan"), ("sel-board", "erin")])
    ballot = client.get(change_link(confirm.text))
    assert re.search(r'value="dan"\s+checked', ballot.text) and re.search(r'value="erin"\s+checked', ballot.text)
    # Back to the code page and on again with the same code: the choices are still there.
    back = client.get(VOTE)
    assert codes[4] in back.text
    again = client.get(_post(client, f"{VOTE}/ballot", {"code": codes[4], "csrf_token": token}).headers["Location"])
    assert re.search(r'value="dan"\s+checked', again.text) and re.search(r'value="erin"\s+checked', again.text)
    forged = client.post(f"{VOTE}/confirm", data=MultiDict([*hidden(ballot.text, "/vote/confirm"),
                                                              ("sel-leader", "mallory")]))
    assert forged.status_code == 422 and "an option this election does not have" in forged.text
    changed = _post(client, f"{VOTE}/confirm", MultiDict([*hidden(ballot.text, "/vote/confirm"), ("sel-leader", "bob")]))
    page = client.get(changed.headers["Location"])
    assert "Bob" in page.text and "You have left" in page.text  # the board was unticked: named as blank


def test_a_refused_code_keeps_what_was_typed_and_is_said_once(client, codes):
    token = token_of(client.get(VOTE).text)
    typo = ("1" if codes[5][0] != "1" else "2") + codes[5][1:]
    answer = _post(client, f"{VOTE}/ballot", {"code": typo, "csrf_token": token})
    assert answer.headers["Location"] == VOTE
    page = client.get(VOTE)
    assert page.status_code == 403 and "This code has a typo" in page.text and f'value="{typo}"' in page.text
    assert client.get_cookie(drafts.COOKIE, path=VOTE) is None  # shown once: the typed code is not kept
    again = client.get(VOTE)
    assert again.status_code == 200 and "typo" not in again.text and typo not in again.text


def test_behind_tls_the_draft_cookie_is_secure(service, codes):
    tls = copy.copy(service)
    tls.config = dataclasses.replace(service.config, server=dataclasses.replace(service.config.server, behind_tls=True))
    client = create_app(service=tls, test_config={"TESTING": True}).test_client()
    token = token_of(client.get(VOTE, base_url="https://localhost").text)
    answer = client.post(f"{VOTE}/ballot", data={"code": codes[6], "csrf_token": token}, base_url="https://localhost")
    assert answer.status_code == 303
    (cookie,) = [v for v in answer.headers.getlist("Set-Cookie") if v.startswith(drafts.COOKIE + "=")]
    assert "Secure" in cookie
