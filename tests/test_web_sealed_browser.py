"""A voter votes with JavaScript in Chromium: the browser seals the ballot, the server never sees the vote.

The story: enter the code, choose, review (in the page, no request), cast: the page seals
the selections with the election's published sealing key (WebCrypto) and sends only the
code and the sealed ballot. Every request the browser made is checked: none carries a
selection. What the server stored is exactly what the browser sealed, and it opens (with
the sealing key's software twin) to what the voter chose. The receipt page then shows the
tracker and no choice, and the page broke no CSP rule.
"""

from __future__ import annotations

import base64
import json

import pytest

from hsm_signer.log import hpke, sealed
from hsm_signer.log.leaf import SealedLeaf, parse_leaf

from js.browser import chromium
from servicekit import DEMO_ELECTION, open_election
from test_web_verify_browser import Visit, live

ELECTION = DEMO_ELECTION["id"]
CHOICE_WORDS = ("carol", "dan", "erin", "sel-", "Carol", "Dan", "Erin")


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


class Voter:
    """One browser context with JavaScript, recording every request and any console error."""

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.requests: list[dict] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append(
            {"url": r.url, "method": r.method, "body": r.post_data or ""}))
        self.page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def start(self, code: str) -> None:
        page = self.page
        page.goto(f"{self.base}/elections/{ELECTION}/vote")
        page.get_by_label("Voting code").fill(code)
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Review my choices").wait_for()


def test_the_browser_seals_the_ballot_and_no_request_carries_the_vote(browser, service, sealing_key):
    code = open_election(service, 3)[0]
    with live(service) as base:
        voter = Voter(browser, base)
        page = voter.page
        try:
            voter.start(code)
            # too many choices are caught in the page, before anything is sent
            for name in ("Dan", "Erin", "Frank"):
                page.get_by_label(name).check()
            page.get_by_role("button", name="Review my choices").click()
            assert "choose at most 2 (you chose 3)" in page.locator("#js-error").inner_text()
            page.get_by_label("Frank").uncheck()
            page.get_by_label("Carol").check()
            before_review = len(voter.requests)
            page.get_by_role("button", name="Review my choices").click()
            page.locator("#js-review").wait_for()
            assert len(voter.requests) == before_review  # reviewing asks the server nothing
            assert "Carol" in page.locator("#js-choices").inner_text()
            assert "Dan, Erin" in page.locator("#js-choices").inner_text()

            page.get_by_role("button", name="Cast my ballot").click()
            page.locator("#js-done").wait_for(timeout=20_000)
            tracker = page.locator("#js-tracker").inner_text()
            assert "Carol" in page.locator("#js-choices").inner_text()  # still shown, from this page only
            receipt_href = page.locator("#js-receipt").get_attribute("href")
            page.goto(base + receipt_href)
            page.get_by_role("heading", name="Your ballot is recorded").wait_for()
            receipt_text = page.locator("main").inner_text()
        finally:
            voter.context.close()

    # Every request the browser made: none carries a selection, and the cast carries only the sealed ballot.
    for request in voter.requests:
        assert not any(word in request["body"] or word in request["url"] for word in CHOICE_WORDS), request
    (cast,) = [r for r in voter.requests if r["url"].endswith(f"/api/v1/elections/{ELECTION}/ballots")]
    body = json.loads(cast["body"])
    assert set(body) == {"code", "sealed"} and set(body["sealed"]) == {"ballot_id", "ciphertext"}
    box = base64.b64decode(body["sealed"]["ciphertext"])
    assert len(box) == sealed.sealed_length(64)

    # What the server stored is what the browser sealed, and it opens to the voter's choice.
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    leaf = parse_leaf(stored)
    assert isinstance(leaf, SealedLeaf) and leaf.ballot_id == body["sealed"]["ballot_id"] and leaf.sealed == box
    info = sealed.sealing_info(ELECTION, "online", leaf.ballot_id)
    assert sealed.decode_plaintext(hpke.open_with_private_key(sealing_key, info, box), 64) == {
        "board": ["dan", "erin"], "leader": ["carol"]}
    receipt = service.ballots.receipt(leaf.ballot_id)
    assert tracker == receipt.tracker and tracker in receipt_text
    assert not any(word in receipt_text for word in ("Carol", "Dan", "Erin"))
    assert not voter.problems, voter.problems  # a CSP violation would be a console error


def test_a_retry_resends_the_same_sealed_ballot_and_gets_the_same_receipt(browser, service, sealing_key):
    code = open_election(service, 2)[0]
    with live(service) as base:
        voter = Voter(browser, base)
        page = voter.page
        failed = []

        def fail_once(route):
            if not failed:  # the ballot reaches the server, but its answer is lost on the way back
                failed.append((route.request.post_data, route.fetch().status))
                route.abort()
            else:
                route.continue_()
        page.route(f"**/api/v1/elections/{ELECTION}/ballots", fail_once)
        statuses = []
        page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/ballots") else None)
        try:
            voter.start(code)
            page.get_by_label("Alice").check()
            page.get_by_role("button", name="Review my choices").click()
            page.get_by_role("button", name="Cast my ballot").click()
            page.locator("#js-error").wait_for()
            assert "could not be sent" in page.locator("#js-error").inner_text()
            page.get_by_role("button", name="Cast my ballot").click()
            page.locator("#js-done").wait_for(timeout=20_000)
        finally:
            voter.context.close()
    casts = [r["body"] for r in voter.requests if r["url"].endswith("/ballots")]
    assert len(casts) == 2 and casts[0] == casts[1] == failed[0][0]  # the very same sealed ballot
    # stored the first time (201, or 503 receipt_pending on a slow machine); recognised the second
    assert failed[0][1] in (201, 503) and statuses == [200], (failed, statuses)
    assert service.storage.tree_size(ELECTION) == 1


def test_verify_checks_a_receipt_v2_and_shows_the_tracker_not_a_vote(browser, service, sealing_key):
    code = open_election(service, 2)[0]
    receipt = service.ballots.cast(ELECTION, code, {"leader": ["bob"], "board": ["frank"]}).receipt
    assert receipt.version == "hsm-signer/receipt/v2"
    with live(service) as base:
        visit = Visit(browser, base)
        try:
            report = visit.paste(receipt.to_json())
            tampered = json.loads(receipt.to_json())
            tampered["tracker"] = "0000-0000-0000-0000"
            bad = visit.paste(json.dumps(tampered))
        finally:
            visit.context.close()
    assert report["steps"]["leaf"]["status"] == "ok", report
    assert f"sealed ballot with tracker {receipt.tracker}" in report["steps"]["leaf"]["text"]
    assert receipt.tracker in report["ballot"] and "does not show how you voted" in report["ballot"]
    assert not any(word in report["ballot"] + json.dumps(report["steps"]) for word in ("Bob", "Frank", "bob", "frank"))
    assert report["steps"]["consistency"]["status"] == "ok"
    assert bad["steps"]["receipt"]["status"] == "fail" and "is not the tracker of its leaf" in bad["steps"]["receipt"]["text"]
    visit.check_clean()


def test_sealed_in_the_browser_opened_at_the_close_counted_and_shown_on_verify(browser, tmp_path):
    """The whole story on a live `hsm-signer serve` of the demo state: the browser seals with
    the published key, the server never receives the vote, `election close` and `tally` (the
    trustees' sealing token) open and count it, and /verify shows the voter their opened ballot."""
    from test_sealed_blackbox import demo_state
    from test_web_live import ServeProcess, cli, http

    config = demo_state(tmp_path)
    code = (config.parent / "codes.csv").read_text().splitlines()[1].strip()
    server = ServeProcess(config, tmp_path / "serve.log").start()
    try:
        voter = Voter(browser, server.url)
        page = voter.page
        try:
            page.goto(f"{server.url}/elections/demo-2026/vote")
            page.get_by_label("Voting code").fill(code)
            page.keyboard.press("Enter")
            page.get_by_label("Chloe Davies").check()
            page.get_by_label("Erin Walsh").check()
            page.get_by_label("Grace Liu").check()
            page.get_by_role("button", name="Review my choices").click()
            page.get_by_role("button", name="Cast my ballot").click()
            page.locator("#js-done").wait_for(timeout=20_000)
            receipt_url = server.url + page.locator("#js-download").get_attribute("href")
        finally:
            voter.context.close()
        for request in voter.requests:
            assert not any(w in request["body"] + request["url"] for w in ("chloe", "erin", "grace", "Chloe", "sel-")), request
        status, _, receipt_json = http("GET", receipt_url)
        assert status == 200 and json.loads(receipt_json)["version"] == "hsm-signer/receipt/v2"

        cli(config, "election", "close", "demo-2026")
        tallied = cli(config, "tally", "demo-2026")
        assert "chloe-davies" in tallied.stdout or "Chloe" in tallied.stdout, tallied.stdout
        tally = json.loads(http("GET", f"{server.url}/api/v1/elections/demo-2026/tally")[2])["tally"]
        assert "tally leader chloe-davies 1" in tally and "tally executive erin-walsh 1" in tally
        api = f"{server.url}/api/v1/elections/demo-2026"
        published = json.loads(http("GET", api + "/openings?start=0&end=5")[2])
        assert (published["start"], published["end"], published["count"]) == (0, 1, 1)
        (opening,) = published["openings"]
        receipt_leaf = parse_leaf(base64.b64decode(json.loads(receipt_json)["leaf"]))
        assert opening["ballot_id"] == receipt_leaf.ballot_id and opening["status"] == "valid"
        assert opening["selections"] == {"executive": ["erin-walsh", "grace-liu"], "leader": ["chloe-davies"]}
        padded = json.loads(http("GET", api)[2])["padded_size"]
        assert sealed.open_sealed(base64.b64decode(opening["shared_secret"]), "demo-2026", "online",
                                  receipt_leaf.ballot_id, receipt_leaf.sealed, padded) == opening["selections"]
        assert http("GET", api + "/openings?start=0&end=5000")[0] == 400

        visit = Visit(browser, server.url)
        try:
            report = visit.paste(receipt_json.decode())
            opened = visit.page.eval_on_selector("#opened", "box => ({status: box.dataset.status, text: box.innerText})")
            board = visit.page.goto(f"{server.url}/board/demo-2026") and visit.page.locator("main").inner_text()
        finally:
            visit.context.close()
        assert report["verdict"] == "ok", report
        assert report["steps"]["tally"]["status"] == "ok"
        assert opened["status"] == "valid", opened
        assert "Chloe Davies" in opened["text"] and "Erin Walsh, Grace Liu" in opened["text"]
        assert "opened your sealed ballot again" in opened["text"]
        assert "Party leader: Chloe Davies" in board
        visit.check_clean()
    finally:
        assert server.stop() == 0
