"""A voter checks a receipt on ``/verify``, in a real browser (Playwright driving Debian's Chromium).

The story: cast ballots on a live server (SoftHSM keys), paste a receipt into the verify
page and watch every step pass; open the receipt's QR link; check offline with the key
bundle file; change one character and see which step fails and why; check the receipt
against a server whose log was rolled back and rewritten (same keys, other history) and
see the consistency step fail; close the poll, sign the tally, and see the same receipt
"counted in the signed tally". The page must break no CSP rule and ask nothing of any
other origin.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from hsm_signer import config as config_mod
from hsm_signer.lifecycle import close_poll, tally_election
from hsm_signer.log.leaf import Leaf
from hsm_signer.service import Service
from hsm_signer.web import create_app

from js.browser import chromium
from servicekit import DEMO_ELECTION, open_election, provision

ELECTION = DEMO_ELECTION["id"]
DONE = "#result[data-done='true']"


@contextmanager
def live(service: Service):
    """The app on a real socket (Werkzeug's threaded server in a thread of this process)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, lambda environ, start_response: [], threaded=True)
    # The receipt's links come from the configured public URL: here, this very server.
    public = copy.copy(service)
    public.config = dataclasses.replace(service.config, server=dataclasses.replace(
        service.config.server, public_url=f"http://127.0.0.1:{server.server_port}"))
    server.app = create_app(service=public)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def kit(tokens, tmp_path_factory):
    return provision(tokens, tmp_path_factory.mktemp("verify-page"))


@pytest.fixture(scope="module")
def service(kit):
    svc = Service.open(kit.load(), with_sequencer=True).start()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def live_url(service):
    with live(service) as url:
        yield url


@pytest.fixture(scope="module")
def receipts(service):
    """Three ballots cast (their receipts), then two more so that the log has grown since."""
    codes = open_election(service, 8)
    choices = [{"leader": ["alice"], "board": ["dan"]}, {"leader": ["bob"], "board": ["dan", "erin"]},
               {"leader": ["carol"], "board": []}]
    kept = [service.ballots.cast(ELECTION, code, chosen).receipt for code, chosen in zip(codes, choices)]
    for code in codes[3:5]:
        service.ballots.cast(ELECTION, code, {"leader": ["alice"], "board": ["frank"]})
    return kept


class Visit:
    """One page in its own browser context, recording console errors and every URL requested."""

    def __init__(self, browser, base: str, **context_options):
        self.base = base
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.offline_from: int | None = None  # index in requests when the network went away
        self.page.on("console", lambda m: self.problems.append(m.text)
                     if m.type == "error" and not (self.offline_from is not None and "ERR_INTERNET_DISCONNECTED" in m.text)
                     else None)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def paste(self, receipt_json: str, *, keys_file: Path | None = None, offline: bool = False) -> dict:
        page = self.page
        page.goto(self.base + "/verify")
        if keys_file is not None:
            page.get_by_text("Check without this server").click()
            page.get_by_label("The election's keys.json").set_input_files(str(keys_file))
        if offline:
            self.context.set_offline(True)
            self.offline_from = len(self.requests)
        page.get_by_label("Paste your receipt").fill(receipt_json)
        page.get_by_role("button", name="Check my receipt").click()
        return self.result()

    def result(self) -> dict:
        self.page.wait_for_selector(DONE, timeout=20_000)
        return self.page.eval_on_selector("#result", """section => ({
            verdict: section.querySelector('#verdict').dataset.verdict,
            verdictText: section.querySelector('#verdict').textContent,
            keysSource: section.querySelector('#keys-source').textContent,
            steps: Object.fromEntries([...section.querySelectorAll('#steps li')].map(li =>
                [li.dataset.step, {status: li.dataset.status, text: li.innerText}])),
            ballot: section.querySelector('#ballot').hidden ? null : section.querySelector('#ballot').innerText,
            tally: section.querySelector('#tally').hidden ? null : section.querySelector('#tally').innerText,
        })""")

    def check_clean(self) -> None:
        assert not self.problems, self.problems  # a CSP violation is a console error
        foreign = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert not foreign, f"the page asked another origin: {foreign}"


@contextmanager
def visit(browser, base: str, **context_options):
    v = Visit(browser, base, **context_options)
    try:
        yield v
    finally:
        v.context.close()
    v.check_clean()  # only when the test's own assertions passed, so they are the ones reported


def statuses(result: dict) -> dict:
    return {step: s["status"] for step, s in result["steps"].items()}


OFFLINE_STEPS = {"keys": "ok", "receipt": "ok", "checkpoint": "ok", "leaf": "ok", "inclusion": "ok"}


def test_a_receipt_from_a_live_run_verifies_step_by_step(browser, live_url, receipts):
    receipt = receipts[1]
    with visit(browser, live_url) as v:
        result = v.paste(receipt.to_json())
    assert statuses(result) == {**OFFLINE_STEPS, "later-checkpoint": "ok", "consistency": "ok", "tally": "pending"}
    steps = result["steps"]
    assert "signed by the election's checkpoint key (test/checkpoint)" in steps["checkpoint"]["text"]
    assert f"the log of election {ELECTION} (test.hsm-signer.invalid/{ELECTION}) then had" in steps["checkpoint"]["text"]
    assert "Your ballot is in the log at position 1 (of" in steps["inclusion"]["text"]
    assert "The log has only grown since your receipt: the log of 5 entries extends" in steps["consistency"]["text"]
    assert "The poll is still open: the tally is signed and published after it closes" in steps["tally"]["text"]
    assert result["verdict"] == "ok"
    ballot_id = Leaf.from_bytes(receipt.leaf).ballot_id
    assert ballot_id in result["ballot"] and "Bob" in result["ballot"] and "Dan, Erin" in result["ballot"]
    assert result["ballot"].index("Leader") < result["ballot"].index("Board")  # the election's order, with titles
    assert "published by this server" in result["keysSource"]


def test_a_server_that_publishes_another_log_name_for_the_election_fails_the_online_check(browser, live_url, receipts):
    """The origin the server publishes for the election must be the one the receipt's checkpoint carries."""
    def other_origin(route):
        response = route.fetch()
        body = response.json()
        route.fulfill(response=response, json={**body, "origin": f"other.example/{ELECTION}"})

    with visit(browser, live_url) as v:
        v.page.route(re.compile(rf".*/api/v1/elections/{re.escape(ELECTION)}$"), other_origin)
        result = v.paste(receipts[1].to_json())
    assert result["verdict"] == "fail"
    assert result["steps"]["checkpoint"]["status"] == "fail"
    assert f"is log \"other.example/{ELECTION}\"" in result["steps"]["checkpoint"]["text"]


def test_the_qr_code_link_on_the_receipt_page_checks_the_same_ballot(browser, live_url, receipts):
    receipt = receipts[0]
    ballot_id = Leaf.from_bytes(receipt.leaf).ballot_id
    with visit(browser, live_url) as v:
        v.page.goto(f"{live_url}/elections/{ELECTION}/receipts/{ballot_id}")
        link = v.page.locator("figure.qr figcaption a").get_attribute("href")
        assert link.startswith(f"{live_url}/verify?e={ELECTION}&i=0&n=")
        v.page.goto(link)  # what scanning the QR code opens
        result = v.result()
        assert statuses(result) == {**OFFLINE_STEPS, "later-checkpoint": "ok", "consistency": "ok", "tally": "pending"}
        assert ballot_id in result["ballot"] and "Alice" in result["ballot"]
        # The receipt assembled from the link is shown, so the voter can keep it.
        assert json.loads(v.page.get_by_label("Paste your receipt").input_value())["leaf"] == receipt.to_dict()["leaf"]

        # A link whose root was changed names a checkpoint the server never signed.
        root = re.search(r"[?&]r=([A-Za-z0-9_-]{43})", link).group(1)
        other = ("B" if root[0] != "B" else "C") + root[1:]
        v.page.goto(link.replace(f"r={root}", f"r={other}"))
        result = v.result()
    assert statuses(result)["receipt"] == "fail" and result["verdict"] == "fail"
    assert "is not the one your QR code names" in result["steps"]["receipt"]["text"]


def test_offline_with_the_key_bundle_file_the_signature_and_inclusion_still_verify(browser, live_url, kit, receipts):
    with visit(browser, live_url) as v:
        result = v.paste(receipts[2].to_json(), keys_file=kit.directory / "keys" / "keys.json", offline=True)
        # Offline, the page only tried the server for what the receipt cannot hold (titles, the latest log).
        tried = v.requests[v.offline_from:]
        assert tried and all(u.startswith(f"{live_url}/api/v1/elections/{ELECTION}") for u in tried), tried
    assert statuses(result) == {**OFFLINE_STEPS, "later-checkpoint": "skipped", "consistency": "skipped",
                                "tally": "skipped"}
    assert "from the file keys.json" in result["keysSource"]
    assert "could not be reached" in result["steps"]["later-checkpoint"]["text"]
    assert "Whether the log has only grown since could not be checked now" in result["verdictText"]


def _change_leaf_index(text: str) -> str:
    return re.sub(r'"leaf_index": (\d+)', lambda m: f'"leaf_index": {int(m.group(1)) + 1}', text, count=1)


def _change_root_character(text: str) -> str:
    root = json.loads(text)["checkpoint"].split("\n")[2]
    return text.replace(root, ("A" if root[0] != "A" else "B") + root[1:], 1)


@pytest.mark.parametrize("change, step, reason, plain", [
    (_change_leaf_index, "inclusion", "This receipt does not prove that the ballot is in the log",
     "Your ballot is not in the election's log at the place this receipt gives."),
    (_change_root_character, "checkpoint",
     r"Reason: receipt checkpoint: signature by test/checkpoint \(key ID [0-9a-f]{8}\) does not verify over the note text",
     "The receipt was not signed by this election's key."),
], ids=["leaf-index", "checkpoint-root"])
def test_a_receipt_with_one_changed_character_fails_at_the_right_step(browser, live_url, receipts, change, step, reason,
                                                                      plain):
    original = receipts[0].to_json()
    changed = change(original)
    assert sum(a != b for a, b in zip(original, changed)) == 1 and len(original) == len(changed)
    with visit(browser, live_url) as v:
        result = v.paste(changed)
    order = list(result["steps"])
    failed_at = order.index(step)
    assert all(result["steps"][s]["status"] == "ok" for s in order[:failed_at])
    assert result["steps"][step]["status"] == "fail"
    assert all(result["steps"][s]["status"] == "skipped" for s in order[failed_at + 1:])
    assert re.search(reason, result["steps"][step]["text"])
    # The verdict says it in plain words, not "<step title> failed".
    assert result["verdict"] == "fail" and result["verdictText"].startswith("This receipt did not pass the check. ")
    assert plain in result["verdictText"] and "failed" not in result["verdictText"]


def test_a_receipt_checked_against_a_rolled_back_log_fails_the_consistency_step(browser, kit, receipts, tmp_path):
    # Another server with the same HSM keys and the same election, whose log has another history:
    # what a voter would see if the log were rolled back and rewritten after their receipt.
    other = tmp_path / "rewritten"
    other.mkdir()
    shutil.copy(kit.config_path, other / "config.toml")
    shutil.copy(kit.directory / "user-pin.txt", other / "user-pin.txt")
    shutil.copytree(kit.directory / "keys", other / "keys")
    rewritten = Service.open(config_mod.load(other / "config.toml"), with_sequencer=True).start()
    try:
        for code in open_election(rewritten, 6)[:6]:
            rewritten.ballots.cast(ELECTION, code, {"leader": ["carol"], "board": []})
        with live(rewritten) as url, visit(browser, url) as v:
            result = v.paste(receipts[1].to_json())
    finally:
        rewritten.close()
    # Everything the receipt proves by itself still holds; the server's log is not an extension of it.
    assert statuses(result) == {**OFFLINE_STEPS, "later-checkpoint": "ok", "consistency": "fail", "tally": "skipped"}
    text = result["steps"]["consistency"]["text"]
    assert "The log has NOT only grown" in text and "rolled back or rewritten" in text
    assert "later checkpoint is not consistent with the receipt's checkpoint" in text
    assert result["verdict"] == "fail"


def test_after_the_poll_closes_the_same_receipt_is_counted_in_the_signed_tally(browser, live_url, service, receipts):
    # Runs last in this module: it closes the poll.
    size, _ = close_poll(service, ELECTION, timeout=30)
    signed = tally_election(service, ELECTION)
    assert signed.created and size == 5
    with visit(browser, live_url) as v:
        result = v.paste(receipts[1].to_json())
    assert statuses(result) == {**OFFLINE_STEPS, "later-checkpoint": "ok", "consistency": "ok", "tally": "ok"}
    assert "signed by the election's tally key (test/tally)" in result["steps"]["later-checkpoint"]["text"]
    assert "It is counted in the signed tally" in result["steps"]["tally"]["text"]
    assert result["verdict"] == "ok" and "counted in the signed tally" in result["verdictText"]
    rows = [line.split("\t") for line in result["tally"].splitlines() if line.count("\t") == 2]
    assert ["Leader", "Alice", "3"] in rows and ["Leader", "Bob", "1"] in rows and ["Board", "Dan", "2"] in rows
