"""Issue 15's black-box test: a live `hsm-signer serve` keeps every vote secret while the poll is open.

Set up exactly as a user would (``hsm-signer demo --no-serve``: rehearsal ceremony with the
sealing token, demo election, codes), start ``hsm-signer serve`` and vote every way there
is: selections sealed by the server, a ballot sealed by the client (the browser's format,
with the published key), a postal ballot recorded with ``hsm-signer postal record``. Then,
as an outsider and as someone holding a used code, read every public answer: the board
(and its tracker search), the entries, code status and "Check my code", the receipt JSON,
receipt and printable pages, the QR link's target and the API calls it makes, the OpenAPI
document, the record export (refused before the close). None holds a cast selection; the
SQLite files and the server's log hold none in clear; a used code tells only its channel,
before and after the close.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path


from hsm_signer.canonical import canonicalize
from hsm_signer.log import sealed
from hsm_signer.log.leaf import SealedLeaf, parse_leaf

from test_web_live import ServeProcess, cli, http

ELECTION = "demo-2026"
TITLES = {"amara-okafor": "Amara Okafor", "ben-carter": "Ben Carter", "chloe-davies": "Chloe Davies",
          "dev-patel": "Dev Patel", "erin-walsh": "Erin Walsh", "farid-haddad": "Farid Haddad", "grace-liu": "Grace Liu"}
SERVER_SEALED = {"leader": ["amara-okafor"], "executive": ["dev-patel", "grace-liu"]}
CLIENT_SEALED = {"leader": ["chloe-davies"], "executive": ["erin-walsh"]}
POSTAL = {"leader": ["ben-carter"], "executive": ["farid-haddad"]}


def demo_state(tmp_path: Path) -> Path:
    """``hsm-signer demo --no-serve``: the state a user gets, with 8 codes; its config path."""
    import subprocess
    import sys

    from test_web_live import command_env
    state = tmp_path / "state"
    done = subprocess.run([sys.executable, "-m", "hsm_signer", "demo", "--state-dir", str(state), "--no-serve",
                           "--codes", "8"], capture_output=True, text=True, timeout=300, env=command_env())
    assert done.returncode == 0, done.stderr
    return state / "config.toml"


def secrets_of(ballots: list[dict]) -> list[str]:
    """Every form in which a cast selection could show: ids, titles, canonical JSON, lists."""
    words = set()
    for selections in ballots:
        words.add(canonicalize(selections).decode())
        for contest, options in selections.items():
            words.add(f'"{contest}":[')
            for option in options:
                words.update({option, TITLES[option], f'["{option}"', f'"{option}"]'})
    return sorted(words)


def leaks(text: str, words: list[str]) -> list[str]:
    return [w for w in words if w in text]


class Browserless:
    """A cookie-keeping client for the HTML forms (CSRF token in the session)."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.read().decode()

    def post(self, path: str, form: dict) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def check_code(self, code: str) -> tuple[int, str]:
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get("/check")).group(1)
        return self.post("/check", {"election": ELECTION, "code": code, "csrf_token": token})


def test_while_the_poll_is_open_no_answer_and_no_database_file_holds_a_cast_vote(tmp_path):
    config = demo_state(tmp_path)
    state = config.parent
    codes = [line.strip() for line in (state / "codes.csv").read_text().splitlines()[1:]]
    server = ServeProcess(config, tmp_path / "serve.log").start()
    api = f"{server.url}/api/v1/elections/{ELECTION}"
    try:
        election = json.loads(http("GET", api)[2])
        assert election["padded_size"] and election["sealed_format"] == sealed.SEALED_FORMAT
        bundle = json.loads(http("GET", f"{server.url}/api/v1/keys")[2])
        (sealing,) = [k for k in bundle["keys"] if k["purpose"] == "sealing"]
        assert election["sealing_key"] == sealing["public_key_point"]  # the key the ceremony published

        # 1. Vote every way there is.
        status, _, server_receipt = http("POST", api + "/ballots", {"code": codes[0], "selections": SERVER_SEALED})
        assert status == 201, server_receipt
        ballot_id = secrets.token_hex(16)
        box = sealed.seal_ballot(base64.b64decode(election["sealing_key"]), ELECTION, "online", ballot_id,
                                 CLIENT_SEALED, election["padded_size"])
        status, _, client_receipt = http("POST", api + "/ballots", {"code": codes[1], "sealed": {
            "ballot_id": ballot_id, "ciphertext": base64.b64encode(box).decode()}})
        assert status == 201, client_receipt
        postal_csv = tmp_path / "postal.csv"
        postal_csv.write_text(f"code,leader,executive\n{codes[2]},ben-carter,farid-haddad\n")
        recorded = cli(config, "postal", "record", ELECTION, "--csv", str(postal_csv), "--receipts",
                       str(tmp_path / "postal-receipts"))
        assert "1 recorded" in recorded.stdout
        (postal_file,) = (tmp_path / "postal-receipts").iterdir()
        receipts = [json.loads(server_receipt), json.loads(client_receipt), json.loads(postal_file.read_text())]
        words = secrets_of([SERVER_SEALED, CLIENT_SEALED, POSTAL])

        # 2. Every public answer, as anyone can ask it.
        answers: dict[str, str] = {"server receipt JSON": server_receipt.decode(),
                                   "client receipt JSON": client_receipt.decode(),
                                   "postal receipt file": postal_file.read_text()}
        web = Browserless(server.url)
        checkpoint = json.loads(http("GET", api + "/checkpoint")[2])
        size = checkpoint["size"]
        assert size == 3
        entries = json.loads(http("GET", api + f"/entries?start=0&end={size}")[2])
        answers["entries"] = json.dumps(entries)
        leaves = [base64.b64decode(e) for e in entries["entries"]]
        answers["entries, decoded"] = "\n".join(leaf.decode() for leaf in leaves)
        assert all(isinstance(parse_leaf(leaf), SealedLeaf) for leaf in leaves)
        assert [json.loads(leaf)["type"] for leaf in leaves] == ["ballot", "ballot", "postal"]
        answers["board"] = web.get(f"/board/{ELECTION}")
        answers["board index"] = web.get("/board/")
        for receipt in receipts:
            leaf = parse_leaf(base64.b64decode(receipt["leaf"]))
            assert receipt["version"] == "hsm-signer/receipt/v2" and receipt["tracker"] in answers["board"]
            found = web.get(f"/board/{ELECTION}?tracker={receipt['tracker']}")
            assert f"the ballot with tracker <code>{receipt['tracker']}</code> is entry {receipt['leaf_index']}" in found
            answers[f"board search {receipt['tracker']}"] = found
            page = f"/elections/{ELECTION}/receipts/{leaf.ballot_id}"
            answers[f"receipt page {leaf.ballot_id}"] = receipt_page = web.get(page)
            answers[f"printable {leaf.ballot_id}"] = web.get(page + "/print")
            answers[f"receipt download {leaf.ballot_id}"] = web.get(page + "/receipt.json")
            qr_target = urllib.parse.urlsplit(html.unescape(
                re.search(r'href="(https?://[^"]+/verify\?[^"]+)"', receipt_page).group(1)))
            answers[f"QR target {leaf.ballot_id}"] = web.get(f"{qr_target.path}?{qr_target.query}")
            query = dict(urllib.parse.parse_qsl(qr_target.query))
            for call in (f"/entries?start={query['i']}&end={int(query['i']) + 1}",
                         f"/proof/inclusion?index={query['i']}&size={query['n']}", f"/checkpoint?size={query['n']}"):
                answers[f"QR target fetches {call}"] = http("GET", api + call)[2].decode()
        for i, code in enumerate(codes[:4]):
            answers[f"code status {i}"] = http("POST", api + "/code-status", {"code": code})[2].decode()
            answers[f"check my code {i}"] = web.check_code(code)[1]
        answers["openapi"] = http("GET", f"{server.url}/api/v1/openapi.json")[2].decode()
        answers["tally"] = http("GET", api + "/tally")[2].decode()
        openings = http("GET", api + "/openings")
        assert openings[0] == 404 and json.loads(openings[2])["error"] == "openings_not_found"
        answers["openings"] = openings[2].decode()
        answers["health"] = http("GET", f"{server.url}/api/v1/health")[2].decode()
        record = http("GET", f"{server.url}/board/{ELECTION}/record.zip")
        assert record[0] == 404  # the record is exported only once the tally is signed
        answers["record export"] = record[2].decode()
        for name, text in answers.items():
            assert not leaks(text, words), f"{name} shows a cast selection: {leaks(text, words)}"

        # 3. Someone holding a used code learns its channel, and nothing else.
        assert [json.loads(answers[f"code status {i}"]) for i in range(4)] == [
            {"status": "online"}, {"status": "online"}, {"status": "postal"}, {"status": "unused"}]
        for i in range(3):
            page = answers[f"check my code {i}"]
            assert "/receipts/" not in page and not any(r["tracker"] in page for r in receipts)
        other = http("POST", api + "/ballots", {"code": codes[0], "selections": POSTAL})
        assert other[0] == 409 and set(json.loads(other[2])) == {"error", "message", "code_status"}
        assert not leaks(other[2].decode(), words) and not any(r["tracker"] in other[2].decode() for r in receipts)

        # 4. The database files and the server's log: no cast selection in clear.
        for path in sorted(state.glob("ballots.sqlite3*")) + [tmp_path / "serve.log"]:
            data = path.read_bytes()
            found = [w for w in words if w.encode() in data and not _in_definition(w)]
            assert not found, f"{path.name} holds {found}"
        db = (state / "ballots.sqlite3").read_bytes()
        assert b'"selections"' not in db and canonicalize(SERVER_SEALED) not in db
    finally:
        assert server.stop() == 0

    # 5. After the close: a used code still tells only its channel.
    cli(config, "election", "close", ELECTION)
    server = ServeProcess(config, tmp_path / "serve-2.log").start()
    api = f"{server.url}/api/v1/elections/{ELECTION}"
    try:
        assert json.loads(http("POST", api + "/code-status", {"code": codes[0]})[2]) == {"status": "online"}
        again = http("POST", api + "/ballots", {"code": codes[0], "selections": SERVER_SEALED})
        assert again[0] == 409 and json.loads(again[2])["error"] == "poll_not_open"
        page = Browserless(server.url).check_code(codes[1])[1]
        assert "used to vote online" in page and "/receipts/" not in page
    finally:
        assert server.stop() == 0


def _in_definition(word: str) -> bool:
    """Option ids and titles are in the stored election definition (the ballot paper itself);
    what must not be stored is a *cast* selection: a list of chosen options, or its JSON."""
    return word in TITLES or word in TITLES.values()
