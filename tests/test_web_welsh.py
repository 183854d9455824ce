"""English and Welsh (Cymraeg) voter pages with Flask-Babel (issue 16).

The catalogue is current (every message in the sources is in the .po and translated, and
the committed .mo is the compiled .po); the language follows Accept-Language or the
visible switch (remembered in a cookie); ``lang`` is right; every voter page rendered in
Welsh shows none of the English messages (the bulletin board in each of its states too),
and the voter-facing API messages are Welsh too.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from werkzeug.datastructures import MultiDict

from hsm_signer.election import Election
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.web import board, drafts, i18n

from servicekit import DEMO_ELECTION, fill_the_board, open_box_with, open_election
from test_web_vote import ELECTION, hidden, token_of

WEB = Path(i18n.__file__).parent
PO = WEB / "translations" / "cy" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
WELSH = {"Accept-Language": "cy"}


def _catalog() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f)


def _source_messages() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(str(WEB), method_map, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_message_in_the_sources_is_translated_and_the_mo_is_the_compiled_po():
    catalog = _catalog()
    translated = {m.id[0] if isinstance(m.id, tuple) else m.id: m.string for m in catalog if m.id}
    missing = _source_messages() - set(translated)
    assert not missing, f"not in the .po (extract and translate them): {sorted(missing)}"
    empty = [k for k, v in translated.items() if not (all(v) if isinstance(v, tuple) else v)]
    assert not empty and not catalog.fuzzy
    assert not [m.id for m in catalog if m.id and m.fuzzy]
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    with MO.open("rb") as f:
        committed = {str(m.id): str(m.string) for m in read_mo(f) if m.id}
    fresh = {str(m.id): str(m.string) for m in read_mo(io.BytesIO(compiled.getvalue())) if m.id}
    assert committed == fresh, "the committed .mo is stale: run pybabel compile -d web/translations"


def _visible_text(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"<[^>]+>", " ", page)
    return re.sub(r"\s+", " ", html.unescape(page))


def _english_left(text: str) -> list[str]:
    """English messages (whole, or each sentence of them) found in a Welsh page's text."""
    left = []
    for message in _catalog():
        if not message.id:
            continue
        english = message.id[0] if isinstance(message.id, tuple) else message.id
        for piece in re.split(r"%\([a-z]+\)[sd]|<[^>]+>", english):
            piece = piece.strip(" .:;,")
            if len(piece) >= 12 and piece in text:
                left.append(piece)
    return left


def _every_voter_page(client, service, codes, headers) -> dict[str, str]:
    pages = {"elections": client.get("/", headers=headers).text}
    start = client.get(f"/elections/{ELECTION}/vote", headers=headers)
    pages["code"] = start.text
    token = token_of(start.text)
    post = lambda path, data: client.post(path, data=data, headers=headers)  # noqa: E731

    def step(path, data):  # a voting step: a POST answered by a 303 to the page to show
        answer = post(path, data)
        assert answer.status_code == 303, answer.text
        return client.get(answer.headers["Location"], headers=headers)

    pages["code with a typo"] = step(f"/elections/{ELECTION}/vote/ballot",
                                     {"code": "1" + codes[0][1:] if codes[0][0] != "1" else "2" + codes[0][1:],
                                      "csrf_token": token}).text
    ballot = step(f"/elections/{ELECTION}/vote/ballot", {"code": codes[0], "csrf_token": token})
    pages["ballot"] = ballot.text
    pages["ballot with a problem"] = step(f"/elections/{ELECTION}/vote/confirm", MultiDict([
        *hidden(ballot.text, "/vote/confirm"), ("sel-board", "dan"), ("sel-board", "erin"), ("sel-board", "frank")])).text
    confirm = step(f"/elections/{ELECTION}/vote/confirm", MultiDict([
        *hidden(ballot.text, "/vote/confirm"), ("sel-leader", ""), ("sel-board", "dan")]))
    pages["confirmation"] = confirm.text
    cast = step(f"/elections/{ELECTION}/vote/cast", MultiDict(hidden(confirm.text, "/vote/cast")))
    pages["cast"] = cast.text
    location = re.search(r'href="(/elections/[^"/]+/receipts/[0-9a-f]{32})"', cast.text).group(1)
    pages["receipt"] = client.get(location, headers=headers).text
    pages["printable receipt"] = client.get(location + "/print", headers=headers).text
    pages["check"] = client.get(f"/check?election={ELECTION}", headers=headers).text
    pages["check: used"] = step("/check", {"election": ELECTION, "code": codes[0], "csrf_token": token}).text
    pages["check: wrong"] = step("/check", {"election": ELECTION, "code": "ABCD", "csrf_token": token}).text
    pages["used code"] = step(f"/elections/{ELECTION}/vote/ballot", {"code": codes[0], "csrf_token": token}).text
    client.delete_cookie(drafts.COOKIE, path=f"/elections/{ELECTION}/vote")
    pages["session ended"] = step(f"/elections/{ELECTION}/vote/cast", {"csrf_token": token}).text
    pages["error"] = client.get("/elections/no-such-election/vote", headers=headers).text
    pages["verify"] = client.get("/verify", headers=headers).text
    pages["verify from a link"] = client.get(f"/verify?e={ELECTION}&i=0&n=1&r={'A' * 43}", headers=headers).text
    return pages


def test_every_voter_page_in_welsh_has_no_english_message_left(client, service, codes):
    pages = _every_voter_page(client, service, codes, WELSH)
    for name, page in pages.items():
        assert '<html lang="cy">' in page, name
        assert _english_left(_visible_text(page)) == [], name
        assert 'lang="en" hreflang="en">English</a>' in page, name  # the switch back
    assert "Rydych wedi gadael 1 adran yn wag: Leader." in pages["confirmation"]
    assert "mae gwall teipio yn y cod hwn"[1:] in pages["code with a typo"]
    assert "Dim dewis (gadael yr adran hon yn wag)" in pages["ballot"]


def test_the_same_pages_in_english_are_english(client, service, codes):
    pages = _every_voter_page(client, service, codes, {"Accept-Language": "en-GB,en;q=0.8"})
    for name, page in pages.items():
        assert '<html lang="en">' in page and 'lang="cy" hreflang="cy">Cymraeg</a>' in page, name
    assert "You have left 1 contest blank: Leader." in pages["confirmation"]
    assert len(_english_left(_visible_text(pages["ballot"]))) >= 3  # the check above can see English


def test_the_verify_pages_script_gets_its_words_in_welsh(client):
    page = client.get("/verify", headers=WELSH).text
    words = json.loads(html.unescape(re.search(r"data-words='([^']*)'", page).group(1)))
    assert words["Passed"] == "Llwyddo" and all(words.values())
    assert words["This receipt did not pass the check. {reason}"].endswith("{reason}")


def _every_board_page(client, service, deriver, headers) -> dict[str, str]:
    """The bulletin board in every state a voter can find it in, from no election to the signed tally."""
    def get(path: str, **query) -> str:
        return client.get(path, query_string=query, headers=headers).text
    pages = {"board index, no elections": get("/board/")}
    service.storage.create_election(Election.from_dict({
        **DEMO_ELECTION, "id": "later", "title": "Later", "timezone": "Europe/London",
        "opens_at": "2030-07-01T08:00:00Z", "closes_at": "2030-07-08T16:00:00Z"}))
    codes = open_election(service, 1200)
    here = f"/board/{ELECTION}"
    pages["board: not open yet"] = get("/board/later")
    pages["board: open, nothing cast"] = get(here)
    pages["board: a tracker looked for, nothing cast"] = get(here, tracker="3f9a-12bc-77de-0a41")
    pages["board: the tally before the close"] = get(here + "/tally.txt")
    pages["board: the record before the tally"] = get(here + "/record.zip")
    postal = fill_the_board(service, codes)
    pages["board index"] = get("/board/")
    pages["board: open, first page"] = get(here)
    pages["board: open, second page"] = get(here, start=str(board.PAGE))
    pages["board: a tracker found"] = get(here, tracker=postal.tracker.upper())
    pages["board: a tracker not found"] = get(here, tracker="0000-0000-0000-0000")
    pages["board: a tracker mistyped"] = get(here, tracker="3f9a-12bc-77de")
    close_poll(service, ELECTION)
    pages["board: closed, not counted yet"] = get(here)
    tally_election(service, ELECTION, open_box=open_box_with(service, deriver))
    pages["board: counted"] = get(here)
    pages["board: counted, a tracker found"] = get(here, tracker=postal.tracker)
    return pages


def _marked_english(page: str) -> list[str]:
    """The elements a page marks ``lang="en"`` (tag names)."""
    return re.findall(r'<([a-z]+)\b[^>]*\blang="en"', page)


def test_every_state_of_the_bulletin_board_in_welsh_has_no_english_message_left(client, service, hsm_sealing_key):
    pages = _every_board_page(client, service, hsm_sealing_key, WELSH)
    for name, page in pages.items():
        assert '<html lang="cy">' in page and '<main id="main">' in page, name
        assert _english_left(_visible_text(page)) == [], name
        assert 'lang="en" hreflang="en">English</a>' in page, name  # the switch back
        marked = _marked_english(page)
        assert marked.count("a") == 1 and set(marked) <= {"a", "span"}, (name, marked)
    # Only the invalid entry's reason (the core's own English words) is marked English.
    reasons = re.findall(r'Annilys, heb ei gyfrif: <span lang="en">([^<]+)</span>', pages["board: counted"])
    assert reasons == ["the sealed ballot does not open with its secret (authentication tag mismatch)"]
    assert _marked_english(pages["board: counted"]).count("span") == 1
    text = {name: _visible_text(page) for name, page in pages.items()}
    assert "Hysbysfwrdd" in text["board index"] and "Nid oes etholiadau eto." in text["board index, no elections"]
    assert "heb agor eto (yn agor: Dydd Llun 1 Gorffennaf 2030, 09:00 (BST))" in text["board: not open yet"]
    assert ("heb eu defnyddio: 1,148; wedi'u defnyddio ar-lein: 51; wedi'u defnyddio drwy'r post: 1"
            in text["board: open, first page"])
    assert "Y 50 nesaf" in text["board: open, first page"] and "Y 50 blaenorol" in text["board: open, second page"]
    assert "Mae gan draciwr pleidlais 16 o lythrennau a digidau" in text["board: a tracker mistyped"]
    assert "Nid oes papur pleidleisio â'r traciwr 0000-0000-0000-0000" in text["board: a tracker not found"]
    assert "yw cofnod 51 yn y log llofnodedig" in text["board: a tracker found"]
    assert "Nid yw'r cyfrif wedi'i lofnodi eto." in text["board: the tally before the close"]
    counted = text["board: counted"]
    assert "Papurau pleidleisio yn y log terfynol: 52 (ar-lein: 51, drwy'r post: 1)." in counted
    assert "O'r rhain, rhai annilys (heb eu cyfrif): 1." in counted
    assert "Leader: Alice; Board: Dim dewis" in counted
    assert "Leader: Bob; Board: Dan, Frank" in text["board: counted, a tracker found"]


def test_the_bulletin_board_in_english_is_english(client, service, hsm_sealing_key):
    pages = _every_board_page(client, service, hsm_sealing_key, {"Accept-Language": "en-GB,en;q=0.8"})
    for name, page in pages.items():
        assert '<html lang="en">' in page and '<main id="main">' in page, name
        assert 'lang="cy" hreflang="cy">Cymraeg</a>' in page, name
    assert "1,148 unused, 51 used online, 1 used by post" in pages["board: open, first page"]
    assert "Leader: Alice; Board: No choice" in _visible_text(pages["board: counted"])
    assert len(_english_left(_visible_text(pages["board: counted"]))) >= 5  # the Welsh check above can see English


def test_the_switch_is_remembered_and_the_api_answers_in_the_chosen_language(client, codes):
    switched = client.get("/?lang=cy")
    assert '<html lang="cy">' in switched.text and "lang=cy" in switched.headers["Set-Cookie"]
    assert '<html lang="cy">' in client.get(f"/elections/{ELECTION}/vote").text  # no Accept-Language: the cookie
    assert '<html lang="en">' in client.get("/?lang=en").text
    assert '<html lang="en">' in client.get("/?lang=xx").text  # an unknown language is ignored
    client.delete_cookie("lang")
    answer = client.post(f"/api/v1/elections/{ELECTION}/code-status", json={"code": "ABCD"}, headers=WELSH)
    assert answer.status_code == 403 and answer.json["error"] == "invalid_code"
    assert answer.json["message"].startswith("mae gan god pleidleisio 17 o lythrennau")


def test_dates_are_welsh_in_welsh(service):
    from servicekit import DEMO_ELECTION
    from hsm_signer.testing.service import open_election
    from hsm_signer.web import create_app
    open_election(service, {**DEMO_ELECTION, "id": "haf", "timezone": "Europe/London",
                            "closes_at": "2030-07-01T16:00:00Z"}, 1)
    client = create_app(service=service, test_config={"TESTING": True}).test_client()
    page = client.get("/elections/haf/vote", headers=WELSH).text
    assert "Dydd Llun 1 Gorffennaf 2030, 17:00 (BST)" in page
