"""A voter in Chromium, with JavaScript, on a desktop and on a 390x844 phone (issue 16).

A typo is caught on the code field, which keeps what was typed; an unknown code gets its
own message; "No choice" is explicit and the review names a blank contest; after casting,
the receipt opens and Back returns to the voting page without resubmitting anything (the
whole vote is one GET page: Chromium would show an error page for a POST page it must not
resend). Nothing a voter chose is in any request but the sealed ballot.
"""

from __future__ import annotations

import pytest

from hsm_signer import codes as codes_mod
from hsm_signer.log.leaf import parse_leaf
from hsm_signer.log import hpke, sealed

from js.browser import chromium
from servicekit import DEMO_ELECTION, open_election
from test_web_verify_browser import live

ELECTION = DEMO_ELECTION["id"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def _typo_of(code: str) -> str:
    return ("1" if code[0] != "1" else "2") + code[1:]


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_a_voter_fixes_a_typo_leaves_a_contest_blank_casts_and_goes_back(browser, service, sealing_key, viewport):
    code = open_election(service, 2)[0]
    with live(service) as base:
        context = browser.new_context(viewport=VIEWPORTS[viewport])
        page = context.new_page()
        problems: list[str] = []
        bodies: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: bodies.append((r.url, r.post_data or "")))
        try:
            page.goto(f"{base}/elections/{ELECTION}/vote")
            field = page.get_by_label("Voting code")
            typo = _typo_of(code)
            field.fill(typo)
            field.press("Enter")
            error = page.locator("#code-error")
            error.wait_for()
            assert "This code has a typo" in error.inner_text()
            assert field.input_value() == typo  # kept: fix one character, not retype 17
            assert field.get_attribute("aria-describedby") == "code-hint code-error"
            assert field.get_attribute("aria-invalid") == "true"

            field.fill(codes_mod.display(codes_mod.new_code()))
            field.press("Enter")
            page.get_by_text("This voting code is not valid for this election").wait_for()

            field.fill(code)
            field.press("Enter")
            page.get_by_role("button", name="Review my choices").wait_for()
            assert page.url == f"{base}/elections/{ELECTION}/vote"  # no page was posted
            page.get_by_label("Carol").check()
            board = page.locator('fieldset[data-contest="board"]')
            board.get_by_label("Dan").check()
            board.get_by_label("No choice").check()  # unticks Dan
            assert not board.get_by_label("Dan").is_checked()
            page.get_by_role("button", name="Review my choices").click()
            blank = page.locator("#js-blank")
            blank.wait_for()
            assert "You have left 1 contest blank: Board." in blank.inner_text()
            assert "No choice" in page.locator("#js-choices").inner_text()
            steps = page.locator(".steps")
            assert [t for t, v in zip(steps.all_inner_texts(), [s.is_visible() for s in steps.all()]) if v] == [
                "Step 3 of 3: check and cast"]  # only the step the voter is on
            page.get_by_role("button", name="Cast my ballot").click()
            page.locator("#js-done").wait_for(timeout=20_000)
            # Once cast, nothing offers to cast again or to change the choices: the buttons were
            # marked hidden but stayed on screen while the stylesheet's display rule won.
            assert not page.get_by_role("button", name="Cast my ballot").is_visible()
            assert not page.get_by_role("button", name="Change my choices").is_visible()

            page.get_by_role("link", name="Open my receipt").click()
            page.get_by_role("heading", name="Your ballot is recorded").wait_for()
            receipt_url = page.url
            answer = page.go_back()  # a POST page would be an error page here (ERR_CACHE_MISS)
            assert answer is not None and answer.ok and answer.request.method == "GET"
            assert page.url == f"{base}/elections/{ELECTION}/vote"
            assert page.get_by_label("Voting code").is_visible()
            page.go_forward()
            assert page.url == receipt_url and page.reload().ok
        finally:
            context.close()
    # The two refused codes are the only failed requests; nothing else went wrong (no CSP violation).
    assert [p for p in problems if "status of 403" not in p] == [] and len(problems) == 2
    for url, body in bodies:
        assert "carol" not in body and "carol" not in url and code.replace("-", "") not in url.replace("-", "")
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    leaf = parse_leaf(stored)
    info = sealed.sealing_info(ELECTION, "online", leaf.ballot_id)
    # The explicit "No choice" is a blank contest, not an option.
    assert sealed.decode_plaintext(hpke.open_with_private_key(sealing_key, info, leaf.sealed), 64) == {
        "board": [], "leader": ["carol"]}


def test_a_voter_switches_to_welsh_and_votes(browser, service, sealing_key):
    code = open_election(service, 2)[0]
    with live(service) as base:
        context = browser.new_context(viewport=VIEWPORTS["phone"], locale="en-GB")
        page = context.new_page()
        try:
            page.goto(f"{base}/elections/{ELECTION}/vote")
            assert page.locator("html").get_attribute("lang") == "en"
            page.get_by_role("link", name="Cymraeg").click()
            assert page.locator("html").get_attribute("lang") == "cy"
            page.get_by_label("Eich cod pleidleisio").fill(code)
            page.get_by_role("button", name="Parhau").click()
            page.get_by_label("Alice").check()
            page.locator('fieldset[data-contest="board"]').get_by_label("Dim dewis").check()
            page.get_by_role("button", name="Adolygu fy newisiadau").click()
            page.locator("#js-blank").wait_for()  # the script's words are Welsh too
            assert page.locator("#js-blank").inner_text().startswith("Rydych wedi gadael 1 adran yn wag: Board.")
            assert "Dim dewis" in page.locator("#js-choices").inner_text()
            page.get_by_role("button", name="Bwrw fy mhleidlais").click()
            page.locator("#js-done").wait_for(timeout=20_000)
            page.get_by_role("link", name="Agor fy nerbynneb").click()
            page.get_by_role("heading", name="Mae eich pleidlais wedi'i chofnodi").wait_for()
            assert page.locator("html").get_attribute("lang") == "cy"  # the switch is remembered
        finally:
            context.close()
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    leaf = parse_leaf(stored)
    info = sealed.sealing_info(ELECTION, "online", leaf.ballot_id)
    assert sealed.decode_plaintext(hpke.open_with_private_key(sealing_key, info, leaf.sealed), 64) == {
        "board": [], "leader": ["alice"]}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_without_javascript_back_and_reload_never_resubmit_a_form(browser, service, sealing_key, viewport):
    """The form-only path: each step's POST (and "Check my code") is answered by a redirect,
    so every page in the history is a GET page; Chromium shows its "Confirm Form Resubmission" error page
    (ERR_CACHE_MISS) for any POST page it would have to send again."""
    code = open_election(service, 2)[0]
    with live(service) as base:
        context = browser.new_context(viewport=VIEWPORTS[viewport], java_script_enabled=False)
        page = context.new_page()
        try:
            page.goto(f"{base}/elections/{ELECTION}/vote")
            page.get_by_label("Voting code").fill(_typo_of(code))
            page.get_by_role("button", name="Continue").click()
            assert "This code has a typo" in page.locator("#code-error").inner_text()
            page.get_by_label("Voting code").fill(code)
            page.get_by_role("button", name="Continue").click()
            assert page.url == f"{base}/elections/{ELECTION}/vote/ballot"
            page.get_by_label("Bob").check()
            page.get_by_role("button", name="Review my choices").click()
            assert page.url == f"{base}/elections/{ELECTION}/vote/confirm"
            assert "You have left 1 contest blank: Board." in page.content()
            answer = page.reload()  # the confirmation page reloads as it is
            assert answer is not None and answer.ok and "Bob" in page.locator("dl.summary").inner_text()
            page.get_by_role("button", name="Cast my ballot").click()
            assert page.url == f"{base}/elections/{ELECTION}/vote/cast"
            page.get_by_role("heading", name="Your ballot is recorded").wait_for()
            assert "Bob" in page.locator("section.chosen").inner_text()

            landed = []
            for _ in range(3):  # Back past the confirmation and the ballot pages, to the code page
                answer = page.go_back()
                assert answer is not None and answer.ok and answer.request.method == "GET", page.url
                landed.append(page.url.removeprefix(base))
                if page.url.endswith("/vote/cast"):
                    # A step of a cast vote: the receipt again, never a form, and no longer the choices.
                    page.get_by_role("heading", name="Your ballot is recorded").wait_for()
                    assert page.locator("section.chosen").count() == 0
                    assert page.get_by_role("button", name="Cast my ballot").count() == 0
            assert landed == [f"/elections/{ELECTION}/vote/cast"] * 2 + [f"/elections/{ELECTION}/vote"]
            answer = page.reload()
            assert answer is not None and answer.ok

            page.goto(f"{base}/check?election={ELECTION}")  # "Check my code" is post/redirect/get too
            page.get_by_label("Your voting code").fill(code)
            page.get_by_role("button", name="Check").click()
            assert page.url == f"{base}/check/result" and "used to vote online" in page.content()
            answer = page.reload()
            assert answer is not None and answer.ok and "used to vote online" in page.content()
            answer = page.go_back()
            assert answer is not None and answer.ok and page.url == f"{base}/check?election={ELECTION}"
        finally:
            context.close()
    assert service.storage.count_codes(ELECTION)["online"] == 1 and service.storage.tree_size(ELECTION) == 1
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    leaf = parse_leaf(stored)
    info = sealed.sealing_info(ELECTION, "online", leaf.ballot_id)
    assert sealed.decode_plaintext(hpke.open_with_private_key(sealing_key, info, leaf.sealed), 64) == {
        "board": [], "leader": ["bob"]}
