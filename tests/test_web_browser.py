"""A real browser (Playwright driving Debian's Chromium) votes through the HTML pages.

With JavaScript switched off, as the pages must work without it: enter the code with
the keyboard, choose, confirm, cast, download the receipt and verify it (in-process and
with ``hsm-signer verify``). Then, with JavaScript on (only so the test can look inside
the page), check that the receipt page breaks no CSP rule, shows its QR code, hides the
navigation when printed and fits a phone screen.
"""

from __future__ import annotations

import os
import threading

import pytest

from hsm_signer.log.leaf import Leaf
from hsm_signer.log.receipt import Receipt
from hsm_signer.verify import verify_receipt
from hsm_signer.web import create_app

from servicekit import DEMO_ELECTION, open_election
from test_web_live import cli

ELECTION = DEMO_ELECTION["id"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        # Never let Playwright fetch a browser of its own: use the system Chromium.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def live_url(service):
    """The app on a real socket (Werkzeug's threaded server in a thread of this process)."""
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, create_app(service=service), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_a_voter_votes_in_a_real_browser_without_javascript_and_the_receipt_verifies(
        browser, service, kit, live_url, tmp_path):
    code = open_election(service, 3)[0]
    context = browser.new_context(java_script_enabled=False, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(live_url + "/")
        page.get_by_role("link", name="Vote online").click()
        page.get_by_label("Voting code").focus()
        page.keyboard.type(code.lower())  # typed as people type: case does not matter
        page.keyboard.press("Enter")

        page.get_by_label("Carol").check()
        page.get_by_label("Erin").focus()
        page.keyboard.press("Space")  # checkboxes work from the keyboard
        page.get_by_label("Dan").check()
        page.get_by_role("button", name="Review my choices").click()

        assert page.get_by_text("Erin, Dan").count() + page.get_by_text("Dan, Erin").count() == 1
        page.get_by_role("button", name="Cast my ballot").click()

        page.get_by_role("heading", name="Your ballot is recorded").wait_for()
        assert code.replace("-", "") not in page.url.upper() and "carol" not in page.url.lower()
        assert page.get_by_role("heading", name="You chose").is_visible()  # from what was just sent
        assert "Carol" in page.locator("section.chosen").inner_text()
        assert page.get_by_role("img", name="QR code").get_attribute("src").startswith("data:image/svg+xml")
        with page.expect_download() as info:
            page.get_by_role("link", name="Download the receipt file").click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        assert path.name == f"receipt-{ELECTION}-0.json"
    finally:
        context.close()

    receipt = Receipt.from_json(path.read_bytes())
    assert verify_receipt(receipt, service.bundle).leaf_index == 0
    assert dict(Leaf.from_bytes(receipt.leaf).selections) == {"leader": ("carol",), "board": ("dan", "erin")}
    result = cli(kit.config_path, "verify", str(path), "--keys", str(kit.directory / "keys"))
    assert result.stdout.startswith("OK:")


def test_the_receipt_page_obeys_the_csp_prints_cleanly_and_fits_a_phone(browser, service, live_url):
    code = open_election(service, 2)[0]
    receipt = service.ballots.cast(ELECTION, code, {"leader": ["bob"], "board": []}).receipt
    ballot_id = Leaf.from_bytes(receipt.leaf).ballot_id
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        page.goto(f"{live_url}/elections/{ELECTION}/receipts/{ballot_id}")
        qr = page.locator("figure.qr img")
        assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
        # A QR code cannot be scanned from the phone that shows it: on screen the phone gets
        # ways to keep the receipt instead; the QR code is printed.
        assert not qr.is_visible()
        assert page.get_by_role("link", name="Print it or save it as a PDF").is_visible()
        assert page.get_by_role("link", name="Download the receipt file").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.locator("header.site").is_visible()
        page.emulate_media(media="print")
        assert not page.locator("header.site").is_visible()
        assert not page.get_by_role("link", name="Download the receipt file").is_visible()
        assert qr.is_visible()
        page.goto(f"{live_url}/elections/{ELECTION}/vote")
        page.goto(f"{live_url}/board/{ELECTION}")
    finally:
        context.close()
    assert problems == []  # no CSP violation, no broken resource
