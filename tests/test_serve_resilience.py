"""``hsm-signer serve`` starts without its HSM, and ``kill -9`` of any of its processes heals.

Issue 13 found ``serve`` exiting at once when its network HSM was away at start-up (board
and verify page down too), and ``kill -9`` of the supervisor leaving the web server and
the sequencer running as orphans, so that a restart failed (port in use, sequencer lock).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import P11KitServer
from hsm_signer.service import Service
from servicekit import DEMO_ELECTION, open_election, provision
from test_serve_supervisor import _serve, _tree
from test_web_live import ServeProcess, http

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["alice"], "board": ["dan"]}


def _session_processes(sid: int) -> list[int]:
    """Every live (non-zombie) process of session ``sid`` (serve runs in a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # fields[3]: session id, fields[0]: state
            found.append(int(entry.name))
    return found


def _cast(server, code, timeout=30) -> tuple[int, dict, bytes]:
    return http("POST", f"{server.url}/api/v1/elections/{ELECTION}/ballots", {"code": code, "selections": VOTE},
                timeout=timeout)


def _wait_until_answering(server: ServeProcess, timeout: float = 30) -> None:
    """Started, whatever its health says (``ServeProcess.start`` waits for a healthy one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log.read_text()
        try:
            http("GET", server.url + "/api/v1/health", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"serve did not answer: {server.log.read_text()}")


def test_serve_starts_without_its_hsm_and_signs_within_2_s_of_its_arrival(
        tokens, tmp_path, p11kit_client_module, p11kit_socket):
    kit = provision(tokens, tmp_path, module=p11kit_client_module)
    hsm_server = P11KitServer(kit.token, p11kit_socket).start()
    service = Service.open(kit.load())
    try:
        codes = open_election(service, 4)
    finally:
        service.close()
    hsm_server.stop()  # the network HSM is away when serve starts

    server = ServeProcess(kit.config_path, tmp_path / "serve.log")
    with open(server.log, "ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "hsm_signer", "--config", str(kit.config_path), "serve", "--port",
             str(server.port), "--threads", "8"], stdout=log, stderr=subprocess.STDOUT, env=server.env,
            start_new_session=True)
    try:
        _wait_until_answering(server)
        status, headers, body = http("GET", server.url + "/api/v1/health")
        assert status == 503 and int(headers["Retry-After"]) >= 1 and json.loads(body)["hsm"]["status"] == "unavailable"
        for page in ("/", "/board/", f"/board/{ELECTION}", "/verify", f"/api/v1/elections/{ELECTION}"):
            assert http("GET", server.url + page)[0] == 200, page
        status, headers, body = _cast(server, codes[0])
        assert status == 503 and json.loads(body)["error"] == "hsm_unavailable" and int(headers["Retry-After"]) >= 1

        hsm_server.start()  # the HSM arrives
        arrived = time.monotonic()
        for _ in range(100):
            status, _, body = _cast(server, codes[0], timeout=10)
            if status == 201:
                break
            assert status == 503, body  # never a 500, and never a receipt without a signature
            time.sleep(0.05)
        first_receipt = time.monotonic() - arrived
        assert status == 201, body
        print(f"first receipt {first_receipt:.2f} s after the HSM arrived")
        assert first_receipt <= 2.0
        assert http("GET", server.url + "/api/v1/health")[0] == 200
        assert _cast(server, codes[1])[0] == 201
    finally:
        server.stop()
        hsm_server.stop()


def test_kill_9_of_the_supervisor_leaves_no_process_and_serve_starts_again(tokens, tmp_path):
    server, codes = _serve(tokens, tmp_path)
    assert _cast(server, codes[0])[0] == 201
    sid = server.process.pid
    assert len(_session_processes(sid)) >= 4  # supervisor, sequencer, gunicorn master and worker
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    for _ in range(300):  # the children notice within a graceful shutdown (at most 30 s)
        left = _session_processes(sid)
        if not left:
            break
        time.sleep(0.1)
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
    again = ServeProcess(server.config, server.log)
    again.port = server.port  # the same port: nothing holds it any more
    again.start()
    try:
        status, _, body = _cast(again, codes[1])
        assert status == 201, body
    finally:
        assert again.stop() == 0


def test_kill_9_of_the_web_server_or_its_worker_is_healed(tokens, tmp_path):
    server, codes = _serve(tokens, tmp_path)
    try:
        children = _tree(server.process.pid)
        masters = [pid for pid, command in children.items() if "--sequencer none" in command]
        (master,) = [pid for pid in masters if _tree(pid)]  # gunicorn's master: the one with a child
        (worker,) = _tree(master)
        os.kill(worker, signal.SIGKILL)  # gunicorn's master forks a new worker
        for code in codes[:1]:
            for _ in range(300):
                try:
                    status = _cast(server, code, timeout=10)[0]
                except OSError:
                    status = None
                if status == 201:
                    break
                time.sleep(0.1)
            assert status == 201
        os.kill(master, signal.SIGKILL)  # the supervisor starts the web server again
        restarted = "web server process exited with status -9; starting it again"
        for _ in range(300):
            if restarted in server.log.read_text():
                break
            time.sleep(0.1)
        assert restarted in server.log.read_text()
        for _ in range(600):  # the old worker drains and dies with its master; the new one binds the port
            new_masters = [pid for pid, command in _tree(server.process.pid).items()
                           if "--sequencer none" in command and pid != master and _tree(pid)]
            try:
                status = _cast(server, codes[1], timeout=10)[0] if new_masters else None
            except OSError:
                status = None
            if status == 201:
                break
            time.sleep(0.1)
        assert status == 201, server.log.read_text()[-3000:]
        assert not os.path.exists(f"/proc/{worker}") and not os.path.exists(f"/proc/{master}")
    finally:
        assert server.stop() == 0
    assert _tree(server.process.pid) == {}
