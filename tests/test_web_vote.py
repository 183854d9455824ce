"""The voter's pages through the Flask test client, as a browser without JavaScript uses them.

Enter the code, choose, confirm, cast, land on the receipt page (ballot id, leaf index,
checkpoint, QR code to /verify, JSON download that verifies, printable view); change
one's mind on the confirmation page; check a code; read the bulletin board. Every POST
is answered by a 303 to a GET page (tests/test_web_vote_steps.py has the rest of that);
the code travels in a POST body or the encrypted draft cookie, never in a URL or a header
in clear.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from html.parser import HTMLParser

from werkzeug.datastructures import MultiDict

from hsm_signer.log.leaf import Leaf
from hsm_signer.log.receipt import Receipt
from hsm_signer.log.tracker import tracker_of
from hsm_signer.verify import verify_receipt
from hsm_signer.web import create_app

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]


class Form(HTMLParser):
    """The fields of every form on a page: [(action, [(name, value, type, checked)])]."""

    def __init__(self, html: str):
        super().__init__()
        self.forms: list[tuple[str, list[tuple[str, str, str, bool]]]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "form":
            self.forms.append((a.get("action", ""), []))
        elif tag == "label" and "for" in a:
            self.labels.add(a["for"])
        elif tag == "input" and self.forms:
            self.forms[-1][1].append((a.get("name", ""), a.get("value", ""), a.get("type", "text"), "checked" in a))


def token_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def hidden(html: str, action_part: str) -> list[tuple[str, str]]:
    """The hidden fields of the form whose action contains ``action_part``."""
    for action, fields in Form(html).forms:
        if action_part in action:
            return [(n, v) for n, v, t, _ in fields if t == "hidden"]
    raise AssertionError(f"no form posting to {action_part}")


def change_link(html: str) -> str:
    """The confirmation page's "Change my choices": a link back to the ballot page."""
    return re.search(r'href="([^"]+)"[^>]*>Change my choices<', html).group(1)


def receipt_link(html: str) -> str:
    """The permanent receipt page linked from the answer to a cast."""
    return re.search(r'href="(/elections/[^"/]+/receipts/[0-9a-f]{32})"', html).group(1)


def step(client, path: str, data):
    """POST a step's form as a browser does: a 303 to a GET page, which is followed."""
    answer = client.post(path, data=data)
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["Location"])
    page.location = answer.headers["Location"]
    return page


def vote(client, code, choices: list[tuple[str, str]]):
    """Walk the pages: code → ballot → confirm → cast; return (the page after casting, the confirmation page)."""
    start = client.get(f"/elections/{ELECTION}/vote")
    assert start.status_code == 200
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": code, "csrf_token": token_of(start.text)})
    assert ballot.status_code == 200 and ballot.location.endswith("/vote/ballot"), ballot.text
    confirm = step(client, f"/elections/{ELECTION}/vote/confirm",
                   MultiDict([*hidden(ballot.text, "/vote/confirm"), *choices]))
    assert confirm.status_code == 200 and confirm.location.endswith("/vote/confirm"), confirm.text
    cast = step(client, f"/elections/{ELECTION}/vote/cast", MultiDict(hidden(confirm.text, "/vote/cast")))
    assert cast.status_code == 200 and cast.location.endswith("/vote/cast"), cast.text
    return cast, confirm


def test_a_voter_votes_through_the_pages_and_keeps_a_receipt_that_verifies(client, service, codes):
    home = client.get("/")
    assert f"/elections/{ELECTION}/vote" in home.text

    cast, confirm = vote(client, codes[0], [("sel-leader", "bob"), ("sel-board", "dan"), ("sel-board", "frank")])
    assert "Bob" in confirm.text and "Dan, Frank" in confirm.text
    # The page after casting is the receipt with what the voter just chose, shown once; the
    # permanent receipt page (and everything reachable from it) never shows the choices.
    assert cast.status_code == 200 and "You chose" in cast.text and "Dan, Frank" in cast.text
    assert "already been cast" not in cast.text
    again = client.get(cast.location)  # Reload: the receipt again, the choices no more
    assert again.status_code == 200 and receipt_link(again.text) == receipt_link(cast.text)
    assert "You chose" not in again.text and "Frank" not in again.text
    location = receipt_link(cast.text)
    assert re.fullmatch(rf"/elections/{ELECTION}/receipts/[0-9a-f]{{32}}", location)

    page = client.get(location)
    ballot_id = location.rsplit("/", 1)[1]
    assert page.status_code == 200
    assert ballot_id in page.text and "Position in the log" in page.text and "tree size" in page.text
    assert "You chose" not in page.text and "Frank" not in page.text and "Bob" not in page.text
    assert re.search(r'<img src="data:image/svg\+xml[^"]+" alt="QR code', page.text)
    # The configured base URL (server.public_url, else host and port), not the request's Host.
    base = re.escape(service.config.server.base_url)
    verify_link = re.search(rf'href="({base}/verify\?[^"]+)"', page.text).group(1)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(verify_link.replace("&amp;", "&")).query)
    assert query["e"] == [ELECTION] and query["i"] == ["0"] and int(query["n"][0]) >= 1
    assert len(query["r"][0]) == 43

    download = client.get(f"{location}/receipt.json")
    assert download.headers["Content-Disposition"] == f'attachment; filename="receipt-{ELECTION}-0.json"'
    receipt = Receipt.from_json(download.data)
    assert verify_receipt(receipt, service.bundle).ballot_id == ballot_id
    assert dict(Leaf.from_bytes(receipt.leaf).selections) == {"leader": ("bob",), "board": ("dan", "frank")}

    printable = client.get(f"{location}/print")
    assert printable.status_code == 200 and receipt.checkpoint.splitlines()[0] in printable.text
    assert "@media print" in client.get("/static/style.css").text

    verify_page = client.get(urllib.parse.urlsplit(verify_link.replace("&amp;", "&"))._replace(
        scheme="", netloc="").geturl())
    assert verify_page.status_code == 200 and "ballot number 0" in verify_page.text


def test_the_ballot_form_is_plain_accessible_html(client, codes):
    start = client.get(f"/elections/{ELECTION}/vote")
    page = Form(start.text)
    assert "code" in page.labels and "code" in page.ids
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[0], "csrf_token": token_of(start.text)})
    form = Form(ballot.text)
    assert form.tags.count("fieldset") == 2 and form.tags.count("legend") == 2
    kinds = {(name, kind) for _, fields in form.forms for name, _, kind, _ in fields if name.startswith("sel-")}
    assert kinds == {("sel-leader", "radio"), ("sel-board", "checkbox")}
    choice_ids = {i for i in form.ids if i.startswith("sel-")}
    assert choice_ids and choice_ids <= form.labels  # every choice has its label
    assert "<script" not in ballot.text and "style=" not in ballot.text
    assert 'name="viewport"' in ballot.text


def test_changing_ones_mind_on_the_confirmation_page_keeps_the_choices(client, service, codes):
    start = client.get(f"/elections/{ELECTION}/vote")
    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[2], "csrf_token": token_of(start.text)})
    confirm = step(client, f"/elections/{ELECTION}/vote/confirm",
                   MultiDict([*hidden(ballot.text, "/vote/confirm"), ("sel-leader", "carol")]))
    change = client.get(change_link(confirm.text))  # a link, not a form: nothing to resubmit
    checked = [(n, v) for _, fields in Form(change.text).forms for n, v, _, c in fields if c]
    assert checked == [("sel-leader", "carol")]
    assert service.storage.count_codes(ELECTION)["unused"] == 10  # nothing counts before "Cast"


def test_wrong_or_used_codes_and_bad_choices_are_explained_on_the_page(client, service, codes):
    start = client.get(f"/elections/{ELECTION}/vote")
    token = token_of(start.text)
    wrong = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": "ABCD", "csrf_token": token})
    assert wrong.status_code == 403 and "A voting code has 17 letters and digits" in wrong.text
    assert 'aria-invalid="true"' in wrong.text and 'role="alert"' in wrong.text and 'value="ABCD"' in wrong.text
    reloaded = client.get(wrong.location)  # the message is shown once, not for ever
    assert reloaded.status_code == 200 and 'id="code-error"' not in reloaded.text and 'value=""' in reloaded.text

    ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[3], "csrf_token": token})
    too_many = step(client, f"/elections/{ELECTION}/vote/confirm",
                    MultiDict([*hidden(ballot.text, "/vote/confirm"), ("sel-leader", "alice"), ("sel-leader", "bob")]))
    assert too_many.status_code == 422 and "you can choose at most 1 option" in too_many.text
    assert too_many.location.endswith("/vote/ballot")

    vote(client, codes[4], [("sel-leader", "alice")])
    used = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": codes[4], "csrf_token": token})
    assert used.status_code == 409 and "already been used online" in used.text, (used.location, used.text[-3000:])
    assert service.storage.count_codes(ELECTION)["online"] == 1


def test_the_poll_must_be_open_for_the_voting_pages(client, service, codes):
    service.storage.set_state(ELECTION, "closed")
    page = client.get(f"/elections/{ELECTION}/vote")
    assert page.status_code == 409 and "has closed" in page.text
    assert client.get("/elections/no-such-election/vote").status_code == 404


def test_check_my_code_shows_unused_online_or_postal_and_never_the_ballot(client, service, codes):
    form = client.get(f"/check?election={ELECTION}")
    token = token_of(form.text)
    assert 'for="code"' in form.text and 'for="election"' in form.text

    def check(code):  # answered by a 303: to the result, or back to the form
        answer = client.post("/check", data={"election": ELECTION, "code": code, "csrf_token": token})
        assert answer.status_code == 303 and answer.headers["Location"] in ("/check/result", f"/check?election={ELECTION}")
        return client.get(answer.headers["Location"])

    assert "not been used" in check(codes[5]).text
    cast, _ = vote(client, codes[5], [("sel-leader", "bob")])
    online = check(codes[5])
    ballot_id = receipt_link(cast.text).rsplit("/", 1)[1]
    assert "used to vote online" in online.text and ballot_id not in online.text and "/receipts/" not in online.text
    service.ballots.cast(ELECTION, codes[6], {"leader": [], "board": []}, channel="postal")
    assert "used by post" in check(codes[6]).text
    assert "used by post" in client.get("/check/result").text  # Reload: the same answer, nothing resent
    wrong = check("ABCD-EFGH")
    assert wrong.status_code == 403 and "A voting code has 17 letters and digits" in wrong.text
    assert 'value="ABCD-EFGH"' in wrong.text and 'id="code-error"' not in client.get("/check").text  # said once


def test_the_code_never_leaves_the_post_bodies(service, codes):
    app = create_app(service=service, test_config={"TESTING": True})
    client = app.test_client()
    code = codes[7]
    compact = code.replace("-", "")
    cast, confirm = vote(client, code, [("sel-leader", "carol")])
    receipt_page = client.get(receipt_link(cast.text))
    check = client.post("/check", data={"election": ELECTION, "code": code, "csrf_token": token_of(confirm.text)})
    for response in (cast, receipt_page, check):
        for name, value in response.headers.items():
            assert compact not in value.replace("-", "").upper(), name
    for html in (receipt_page.text, check.text):
        for link in re.findall(r'(?:href|src|action)="([^"]+)"', html):
            assert compact not in link.replace("-", "").upper()
    cookie = client.get_cookie("hsm_signer_session")
    assert compact not in base64.urlsafe_b64decode(cookie.value.split(".")[0] + "==").decode().replace("-", "").upper()
    assert "no-store" in confirm.headers["Cache-Control"]


def test_the_bulletin_board_shows_the_signed_log(client, service, codes):
    for code, option in zip(codes[:3], ["alice", "bob", "carol"]):
        service.ballots.cast(ELECTION, code, {"leader": [option], "board": []})
    board = client.get("/board/")
    assert DEMO_ELECTION["title"] in board.text and "<td>3</td>" in board.text
    page = client.get(f"/board/{ELECTION}")
    size, note = service.storage.latest_checkpoint(ELECTION)
    assert note.splitlines()[0] in page.text and "7 unused, 3 used online" in page.text
    trackers = [tracker_of(leaf) for leaf in service.storage.entries(ELECTION, 0, 3)]
    assert all(t in page.text for t in trackers) and not any(o in page.text for o in ("alice", "bob", "carol"))
    assert client.get(f"/board/{ELECTION}?start=99999").status_code == 200
    assert client.get(f"/board/{ELECTION}?start=-5").status_code == 200
    assert client.get("/board/no-such-election").status_code == 404


def test_the_verify_page_takes_only_well_formed_links(client):
    good = client.get(f"/verify?e={ELECTION}&i=2&n=5&r={'A' * 43}")
    assert "ballot number 2" in good.text
    for query in ("e=<script>&i=1&n=2&r=x", "e=a&i=5&n=2&r=" + "A" * 43, "i=99999999999999999999999"):
        page = client.get(f"/verify?{query}")
        assert page.status_code == 200 and "<script>" not in page.text and "ballot number" not in page.text
