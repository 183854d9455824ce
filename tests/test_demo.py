"""`hsm-signer demo`, as the README promises: one command up, vote, stop, resume, officials' commands."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import require
from hsm_signer import softhsm
from hsm_signer.bundle import KeyBundle
from hsm_signer.log.receipt import Receipt
from hsm_signer.verify import verify_receipt

REPO = Path(__file__).resolve().parent.parent
VOTE = {"leader": ["ben-carter"], "executive": ["dev-patel", "grace-liu"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hsm_signer(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hsm_signer", *args], capture_output=True, text=True,
                          timeout=300, env=_env(), cwd=kwargs.get("cwd"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "HSM_SIGNER_CONFIG")}
    env["PYTHONPATH"] = str(REPO)
    return env


class Demo:
    def __init__(self, state: Path, port: int):
        self.state, self.port = state, port
        self.process: subprocess.Popen | None = None
        self.output = state.parent / f"demo-{port}.log"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hsm_signer", "demo", "--state-dir", str(self.state), "--port", str(self.port)],
            env=_env(), stdout=self.output.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.url("/api/v1/health"), timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not come up:\n{self.output.read_text()}")
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(self.url(path), data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)


@pytest.fixture
def demo(tmp_path):
    require(softhsm.find_module() is not None, "SoftHSM2 is not installed (apt-get install softhsm2)")
    d = Demo(tmp_path / "demo-state", free_port())
    yield d
    d.stop()


def test_the_demo_comes_up_takes_a_vote_and_resumes_after_a_restart(demo, tmp_path):
    demo.start()
    log = demo.output.read_text()
    for line in ("vote at          http://127.0.0.1:", "voting codes     ", "key bundle       "):
        assert line in log
    codes = [row["code"] for row in csv.DictReader((demo.state / "codes.csv").open())]
    assert len(codes) == 300
    bundle = KeyBundle.load(demo.state / "keys" / "demo-ceremony")
    assert hsm_signer("ceremony", "verify", str(demo.state / "keys" / "demo-ceremony")).returncode == 0

    status, body = demo.post("/api/v1/elections/demo-2026/ballots", {"code": codes[0], "selections": VOTE})
    assert status == 201, body
    receipt = Receipt.from_dict(body)
    # Its log has a name of its own: no other demo (or deployment) signs checkpoints of it.
    origin = verify_receipt(receipt, bundle).origin
    assert re.fullmatch(r"demo\.hsm-signer\.invalid/[0-9a-f]{8}/demo-2026", origin), origin
    assert f'origin_prefix = "{origin.rsplit("/", 1)[0]}"' in (demo.state / "config.toml").read_text()

    demo.stop()
    demo.start()
    assert "resuming the demo in" in demo.output.read_text()
    status, again = demo.post("/api/v1/elections/demo-2026/ballots", {"code": codes[0], "selections": VOTE})
    assert status == 200 and Receipt.from_dict(again) == receipt

    # The officials' commands work on the demo election through its own config file.
    config = str(demo.state / "config.toml")
    closed = hsm_signer("--config", config, "election", "close", "demo-2026")
    assert closed.returncode == 0, closed.stderr
    assert "final checkpoint covers 1 entries" in closed.stdout
    tallied = hsm_signer("--config", config, "tally", "demo-2026")
    assert tallied.returncode == 0, tallied.stderr
    exported = hsm_signer("--config", config, "record", "export", "demo-2026", str(tmp_path / "record"))
    assert exported.returncode == 0, exported.stderr
    audited = hsm_signer("audit", str(tmp_path / "record"))
    assert audited.returncode == 0, audited.stdout + audited.stderr


def test_an_unfinished_demo_state_is_refused_with_the_fix(tmp_path):
    state = tmp_path / "half"
    state.mkdir()
    (state / "leftover").write_text("x")
    result = hsm_signer("demo", "--state-dir", str(state), "--no-serve")
    assert result.returncode == 2
    assert "holds an unfinished demo state" in result.stderr and "remove the directory" in result.stderr
