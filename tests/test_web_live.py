"""The whole story against a live ``hsm-signer serve`` process, with the officials' commands.

Create and open the election and issue codes with the CLI, start the server, vote over
HTTP, verify the receipt with ``hsm-signer verify`` (offline and against the live log),
vote again (200 / 409), record a postal ballot and a rejected postal duplicate with
``hsm-signer postal record`` while the server runs, check code status, and stop cleanly.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hsm_signer.log.receipt import Receipt
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION, provision

REPO = Path(__file__).resolve().parent.parent
ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}
DEFINITION = """
id = "test-election"
title = "Test election"

[[contests]]
id = "leader"
title = "Leader"
options = [{ id = "alice", title = "Alice" }, { id = "bob", title = "Bob" }, { id = "carol", title = "Carol" }]

[[contests]]
id = "board"
title = "Board"
max_choices = 2
options = [{ id = "dan", title = "Dan" }, { id = "erin", title = "Erin" }, { id = "frank", title = "Frank" }]
"""


def command_env(**extra: str) -> dict:
    # The repo first on the path: an editable install made before web/ had an
    # __init__.py maps ``web`` as a namespace package.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **extra}


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "hsm_signer", "--config", str(config), *args],
                            capture_output=True, text=True, timeout=120, env=command_env())
    if check and result.returncode != 0:
        raise AssertionError(f"hsm-signer {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: object | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """(status, headers, body) without raising for HTTP error statuses."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class ServeProcess:
    """``hsm-signer serve`` in its own session (so kill -9 reaches gunicorn's worker too)."""

    def __init__(self, config: Path, log: Path, *args: str, **env: str):
        self.config = config
        self.log = log
        self.args = args  # more `serve` options, e.g. ("--sequencer", "thread")
        self.env = command_env(**env)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "ServeProcess":
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hsm_signer", "--config", str(self.config), "serve",
                 "--port", str(self.port), "--threads", "8", *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}: {self.log.read_text()}")
            try:
                if http("GET", self.url + "/api/v1/health", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not become healthy: {self.log.read_text()}")

    def kill9(self) -> None:
        """The crash: SIGKILL to the server and its worker at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)


def test_the_whole_story_against_a_live_server(tokens, tmp_path):
    kit = provision(tokens, tmp_path)
    config = kit.config_path
    (tmp_path / "election.toml").write_text(DEFINITION)
    cli(config, "election", "create", str(tmp_path / "election.toml"))
    cli(config, "election", "open", ELECTION)
    cli(config, "codes", "issue", ELECTION, "--count", "5", "--out", str(tmp_path / "codes.csv"))
    with open(tmp_path / "codes.csv", newline="") as handle:
        codes = [row["code"] for row in csv.DictReader(handle)]

    server = ServeProcess(config, tmp_path / "serve.log").start()
    try:
        api = f"{server.url}/api/v1/elections/{ELECTION}"
        status, headers, body = http("GET", server.url + "/")
        assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]

        status, _, body = http("POST", api + "/ballots", {"code": codes[0], "selections": VOTE})
        assert status == 201, body
        (tmp_path / "receipt.json").write_bytes(body)
        result = cli(config, "verify", str(tmp_path / "receipt.json"), "--keys", str(kit.directory / "keys"))
        assert result.stdout.startswith("OK: election test-election")
        verify_receipt(Receipt.from_json(body), _bundle(kit))

        again = http("POST", api + "/ballots", {"code": codes[0], "selections": {"board": ["dan", "erin"],
                                                                                  "leader": ["carol"]}})
        assert again[0] == 200 and again[2] == body
        other = http("POST", api + "/ballots", {"code": codes[0], "selections": {"leader": ["bob"], "board": []}})
        assert other[0] == 409 and json.loads(other[2])["error"] == "code_used"

        # The official records postal ballots while the server runs (its sequencer signs them).
        postal = tmp_path / "postal.csv"
        postal.write_text(f"code,leader,board\n{codes[1]},alice,dan frank\n{codes[0]},bob,\n")
        recorded = cli(config, "postal", "record", ELECTION, "--csv", str(postal),
                       "--report", str(tmp_path / "report.json"))
        assert "2 rows: 1 recorded, 1 duplicate of an online vote" in recorded.stdout
        report = json.loads((tmp_path / "report.json").read_text())
        assert [(r["row"], r["outcome"]) for r in report["rows"]] == [(2, "recorded"), (3, "duplicate_online")]

        def code_status(code):
            status, _, body = http("POST", api + "/code-status", {"code": code})
            assert status == 200
            return json.loads(body)
        assert code_status(codes[0]) == {"status": "online"}  # never the ballot or its receipt
        assert code_status(codes[1]) == {"status": "postal"}
        assert code_status(codes[2]) == {"status": "unused"}
        online_after_postal = http("POST", api + "/ballots", {"code": codes[1], "selections": VOTE})
        assert online_after_postal[0] == 409

        # The receipt still verifies against the grown log, fetched from the live server.
        result = cli(config, "verify", str(tmp_path / "receipt.json"), "--keys", str(kit.directory / "keys"),
                     "--server", server.url)
        assert "the log of 2 entries" in result.stdout
    finally:
        assert server.stop() == 0  # SIGTERM: a clean shutdown
    log = (tmp_path / "serve.log").read_text()
    assert "POST /api/v1/elections/test-election/ballots" in log  # the access log is on ...
    for code in codes:
        assert code not in log and code.replace("-", "") not in log  # ... and never shows a code


def _bundle(kit):
    from hsm_signer.bundle import KeyBundle
    return KeyBundle.load(kit.directory / "keys")
