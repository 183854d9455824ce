"""axe-core finds no WCAG 2.1 A/AA violation on any state of the voter's pages (issue 16).

Every page a voter meets, in each of its states (an error on the code field, the ballot,
a contest's problem, the review with a blank contest, the cast ballot, the receipt, the
checks, the bulletin board from empty to the signed tally), on a desktop and on a 390x844
phone, in English and in Welsh. axe-core is the pinned copy vendored in
tests/js/vendor/axe-core, served to the page from its own origin (so the page's CSP,
``script-src 'self'``, stays on) and never fetched from a CDN.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hsm_signer import codes as codes_mod
from hsm_signer.lifecycle import close_poll, tally_election

from js.browser import chromium
from servicekit import DEMO_ELECTION, fill_the_board, open_box_with, open_election
from test_web_verify_browser import live

ELECTION = DEMO_ELECTION["id"]
AXE = Path(__file__).parent / "js" / "vendor" / "axe-core" / "axe.min.js"
AXE_SHA256 = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"  # axe-core 4.10.3
AXE_PATH = "/__axe-core-under-test.js"
WCAG21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WORDS = {
    "en": {"code": "Voting code", "review": "Review my choices", "none": "No choice", "cast": "Cast my ballot",
           "open": "Open my receipt", "recorded": "Your ballot is recorded", "check": "Check",
           "used": "used to vote online", "link": "Check the receipt from the link",
           "find": "Find a ballot by its tracker", "details": "Technical details"},
    "cy": {"code": "Eich cod pleidleisio", "review": "Adolygu fy newisiadau", "none": "Dim dewis",
           "cast": "Bwrw fy mhleidlais", "open": "Agor fy nerbynneb", "recorded": "Mae eich pleidlais wedi'i chofnodi",
           "check": "Gwirio", "used": "ddefnyddio i bleidleisio ar-lein", "link": "Gwirio'r dderbynneb o'r ddolen",
           "find": "Chwilio am bapur pleidleisio yn ôl ei draciwr", "details": "Manylion technegol"},
}
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def test_the_vendored_axe_core_is_the_pinned_release():
    assert hashlib.sha256(AXE.read_bytes()).hexdigest() == AXE_SHA256


class Auditor:
    """A browser context whose pages can load axe-core from their own origin."""

    def __init__(self, browser, base: str, viewport: dict, **options):
        self.context = browser.new_context(viewport=viewport, **options)
        self.context.route(f"{base}{AXE_PATH}", lambda route: route.fulfill(
            status=200, content_type="text/javascript", body=AXE.read_text(encoding="utf-8")))
        self.page = self.context.new_page()
        self.base = base
        self.found: dict[str, list] = {}

    def audit(self, state: str) -> None:
        """Run axe on the page as it is now; remember the violations under ``state``."""
        page = self.page
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(url=f"{self.base}{AXE_PATH}")
        result = page.evaluate("""async (tags) => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""", WCAG21_AA)
        self.found[state] = result

    def close(self):
        self.context.close()


def _typo_of(code: str) -> str:
    return ("1" if code[0] != "1" else "2") + code[1:]


@pytest.mark.parametrize("viewport, language", [("desktop", "en"), ("phone", "en"), ("phone", "cy")],
                         ids=["desktop", "phone", "phone-welsh"])
def test_every_state_of_the_voters_pages_with_javascript(browser, service, sealing_key, viewport, language):
    codes = open_election(service, 3)
    W = WORDS[language]
    with live(service) as base:
        auditor = Auditor(browser, base, VIEWPORTS[viewport])
        page = auditor.page
        try:
            page.goto(f"{base}/?lang={language}")
            assert page.locator("html").get_attribute("lang") == language
            auditor.audit("elections")
            page.goto(f"{base}/elections/{ELECTION}/vote")
            auditor.audit("code")
            field = page.get_by_label(W["code"])
            field.fill(_typo_of(codes[0]))
            field.press("Enter")
            page.locator("#code-error").wait_for()
            auditor.audit("code with a typo")
            field.fill(codes[0])
            field.press("Enter")
            page.get_by_role("button", name=W["review"]).wait_for()
            auditor.audit("ballot")
            for name in ("Dan", "Erin", "Frank"):
                page.get_by_label(name).check()
            page.get_by_role("button", name=W["review"]).click()
            page.locator("#js-error").wait_for()
            auditor.audit("ballot with too many choices")
            page.locator('fieldset[data-contest="board"]').get_by_label(W["none"]).check()
            page.get_by_role("button", name=W["review"]).click()
            page.locator("#js-review").wait_for()
            auditor.audit("review with blank contests")
            page.get_by_role("button", name=W["cast"]).click()
            page.locator("#js-done").wait_for(timeout=20_000)
            auditor.audit("cast")
            page.get_by_role("link", name=W["open"]).click()
            page.get_by_role("heading", name=W["recorded"]).wait_for()
            auditor.audit("receipt")
            receipt_url = page.url
            page.goto(receipt_url + "/print")
            auditor.audit("printable receipt")
            page.goto(f"{base}/check?election={ELECTION}")
            auditor.audit("check my code")
            page.get_by_label(W["code"]).fill("ABCD")
            page.get_by_role("button", name=W["check"], exact=True).click()
            page.locator("#code-error").wait_for()
            auditor.audit("check my code with a wrong code")
            page.get_by_label(W["code"]).fill(codes[0])
            page.get_by_role("button", name=W["check"], exact=True).click()
            page.get_by_text(W["used"]).wait_for()
            auditor.audit("check my code: used")
            page.goto(f"{base}/board/")
            auditor.audit("board index")
            page.goto(f"{base}/board/{ELECTION}")
            auditor.audit("board")
            page.goto(receipt_url)
            link = page.locator("figure.qr figcaption a").get_attribute("href")
            page.goto(link)
            auditor.audit("verify from the QR link")
            page.get_by_role("button", name=W["link"]).click()
            page.locator("#result[data-done]").wait_for(timeout=20_000)
            auditor.audit("verify result")
            page.goto(f"{base}/elections/no-such/vote")
            auditor.audit("error page")
            # The audit can fail: a field without a label on the same page is caught.
            page.evaluate("document.querySelector('main').append(Object.assign("
                          "document.createElement('input'), {type: 'text'}))")
            auditor.audit("planted fault")
        finally:
            auditor.close()
    planted = auditor.found.pop("planted fault")
    assert "label" in {v["id"] for v in planted}, planted
    bad = {state: found for state, found in auditor.found.items() if found}
    assert bad == {}, bad
    assert len(auditor.found) == 17


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_every_state_of_the_form_steps_a_browser_without_javascript_gets(browser, service, viewport):
    """Without a sealing key on the page the steps are the plain HTML forms a browser without
    JavaScript gets (no script on them); axe runs in the page all the same."""
    codes = open_election(service, 3)
    with live(service) as base:
        auditor = Auditor(browser, base, VIEWPORTS[viewport])
        page = auditor.page
        try:
            page.goto(f"{base}/elections/{ELECTION}/vote")
            field = page.get_by_label("Voting code")
            field.fill(codes_mod.display(codes_mod.new_code()))
            field.press("Enter")
            page.locator("#code-error").wait_for()
            auditor.audit("code with an unknown code")
            page.get_by_label("Voting code").fill(codes[1])
            page.get_by_label("Voting code").press("Enter")
            page.get_by_role("button", name="Review my choices").wait_for()
            assert page.locator("script").count() == 0
            auditor.audit("ballot")
            for name in ("Dan", "Erin", "Frank"):
                page.get_by_label(name).check()
            page.get_by_role("button", name="Review my choices").click()
            page.locator("#problem-board").wait_for()
            auditor.audit("ballot with a contest's problem")
            page.get_by_label("Frank").uncheck()
            page.get_by_role("button", name="Review my choices").click()
            page.get_by_role("button", name="Cast my ballot").wait_for()
            auditor.audit("confirmation with a blank contest")
            page.get_by_role("button", name="Cast my ballot").click()
            page.get_by_role("heading", name="Your ballot is recorded").wait_for()
            auditor.audit("cast: the receipt with the choices")
        finally:
            auditor.close()
    bad = {state: found for state, found in auditor.found.items() if found}
    assert bad == {}, bad
    assert len(auditor.found) == 5


@pytest.mark.parametrize("viewport, language", [("desktop", "en"), ("phone", "cy")], ids=["desktop", "phone-welsh"])
def test_every_state_of_the_bulletin_board(browser, service, hsm_sealing_key, viewport, language):
    """The board a voter looks for their tracker on: empty, filling during the poll (a
    mistyped tracker, a tracker found on the second page), closed, and counted."""
    codes = open_election(service, 60)
    W = WORDS[language]
    with live(service) as base:
        auditor = Auditor(browser, base, VIEWPORTS[viewport])
        page = auditor.page
        try:
            page.goto(f"{base}/board/{ELECTION}?lang={language}")
            assert page.locator("html").get_attribute("lang") == language
            assert page.locator("main").get_attribute("lang") is None  # the board's words are the page's language
            auditor.audit("board: open, nothing cast")
            postal = fill_the_board(service, codes)
            page.goto(f"{base}/board/")
            auditor.audit("board index")
            page.goto(f"{base}/board/{ELECTION}")
            auditor.audit("board: open, first page")
            field = page.get_by_label(W["find"])
            field.fill("3f9a-12bc-77de")
            field.press("Enter")
            page.locator("#tracker-error").wait_for()
            auditor.audit("board: a tracker mistyped")
            page.get_by_label(W["find"]).fill(postal.tracker)
            page.get_by_label(W["find"]).press("Enter")
            page.locator("tr.found").wait_for()
            auditor.audit("board: a tracker found on the second page")
            close_poll(service, ELECTION)
            page.goto(f"{base}/board/{ELECTION}")
            auditor.audit("board: closed, not counted yet")
            tally_election(service, ELECTION, open_box=open_box_with(service, hsm_sealing_key))
            page.goto(f"{base}/board/{ELECTION}")
            page.get_by_text(W["details"]).click()
            page.locator("pre.note").wait_for()
            auditor.audit("board: counted, the checkpoint unfolded")
        finally:
            auditor.close()
    bad = {state: found for state, found in auditor.found.items() if found}
    assert bad == {}, bad
    assert len(auditor.found) == 7
