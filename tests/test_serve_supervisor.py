"""``hsm-signer serve`` runs the sequencer as its own supervised process (the default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_live import ServeProcess, http

from hsm_signer.service import Service

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["alice"], "board": ["dan"]}


def _tree(root: int) -> dict[int, str]:
    """pid -> command line of every process below ``root``."""
    found, frontier = {}, [root]
    while frontier:
        listing = subprocess.run(["pgrep", "-a", "-P", str(frontier.pop())], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            pid, _, command = line.partition(" ")
            found[int(pid)] = command
            frontier.append(int(pid))
    return found


def _sequencers(server) -> list[int]:
    return [pid for pid, command in _tree(server.process.pid).items() if command.endswith(" sequencer")]


def _cast(server, code, *, attempts: int = 5) -> tuple[int, bytes]:
    """POST a ballot as a client does: on the documented ``503 receipt_pending`` (the ballot is
    stored, no signed checkpoint covers it yet, e.g. right after a sequencer restart) wait
    ``Retry-After`` and send the same ballot again, which is idempotent (200 with the receipt)."""
    for _ in range(attempts):
        status, headers, body = http("POST", f"{server.url}/api/v1/elections/{ELECTION}/ballots",
                                     {"code": code, "selections": VOTE}, timeout=30)
        if status != 503 or json.loads(body).get("error") != "receipt_pending":
            return status, body
        time.sleep(min(float(headers.get("Retry-After", "1")), 5))
    return status, body


def _receipt_status(status: int, body: bytes) -> bool:
    """A receipt came back: 201 for a new ballot, 200 for the same ballot sent again."""
    return status in (200, 201) and json.loads(body)["election"] == ELECTION


def _serve(tokens, tmp_path, *args: str) -> tuple[ServeProcess, list[str]]:
    """A started ``hsm-signer serve`` (with ``args``) for an open election, and its codes."""
    kit = provision(tokens, tmp_path)
    service = Service.open(kit.load())
    try:
        codes = open_election(service, 4)
    finally:
        service.close()
    return ServeProcess(kit.config_path, tmp_path / "serve.log", *args).start(), codes


def test_a_dead_sequencer_is_started_again_and_receipts_keep_coming(tokens, tmp_path):
    server, codes = _serve(tokens, tmp_path)
    try:
        (first,) = _sequencers(server)
        assert _receipt_status(*_cast(server, codes[0]))
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _sequencers(server) in ([], [first]):
            time.sleep(0.1)
        (second,) = _sequencers(server)
        assert second != first
        status, body = _cast(server, codes[1])
        assert _receipt_status(status, body), body
        log = (tmp_path / "serve.log").read_text()
        assert "sequencer process exited with status -9; starting it again" in log
    finally:
        assert server.stop() == 0
    assert _tree(server.process.pid) == {}


def test_sigterm_to_serve_alone_stops_both_children(tokens, tmp_path):
    server, codes = _serve(tokens, tmp_path)
    children = _tree(server.process.pid)
    assert len(_sequencers(server)) == 1 and any(" serve " in c and "--sequencer none" in c for c in children.values())
    assert _receipt_status(*_cast(server, codes[0]))
    server.process.send_signal(signal.SIGTERM)  # the supervisor only, as an init system would
    assert server.process.wait(timeout=30) == 0
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    assert "ERROR" not in (tmp_path / "serve.log").read_text()


def test_the_sequencer_can_run_inside_the_web_process(tokens, tmp_path):
    server, codes = _serve(tokens, tmp_path, "--sequencer", "thread")
    try:
        assert _sequencers(server) == []
        assert _receipt_status(*_cast(server, codes[0]))
    finally:
        assert server.stop() == 0
