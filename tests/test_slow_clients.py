"""Slow clients do not stall voters: 100 connections trickling half-requests for 30 s while 20 vote.

Issue 13: 70 connections sending a partial body or partial headers blocked every request
for as long as they were held (no read timeout, 64 threads). Now a request must arrive
whole within ``--read-timeout`` (10 s) of its first byte; the attacker here reconnects at
once whenever it is dropped, so it keeps about 100 half-requests open throughout.
Loopback only, bounded: 100 sockets, 30 s, 20 voters.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_live import ServeProcess

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin"]}
SLOW = 100
HOLD = 30.0
VOTERS = 20


class Slowloris:
    """``count`` connections, half stuck in their headers and half in their body, each
    trickling a byte a second and reconnecting as soon as the server drops it."""

    def __init__(self, port: int, count: int, connect=None):
        self.port, self.count = port, count
        # how to open a connection (default: plain TCP to 127.0.0.1:port); e.g. TLS for nginx
        self.connect = connect or (lambda: socket.create_connection(("127.0.0.1", self.port), timeout=5))
        self.stop = threading.Event()
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, n: int) -> socket.socket:
        sock = self.connect()
        path = f"/api/v1/elections/{ELECTION}/ballots"
        if n % 2:  # partial headers
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode())
        else:  # complete headers, partial body
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: 4000\r\n\r\n{{\"code\": \"".encode())
        return sock

    def _run(self) -> None:
        socks = {n: self._open(n) for n in range(self.count)}
        while not self.stop.wait(1.0):
            for n, sock in list(socks.items()):
                try:
                    sock.sendall(b"a" if n % 2 == 0 else b"X-Slow: a\r\n"[:1])
                except OSError:
                    sock.close()
                    try:
                        socks[n] = self._open(n)
                        self.reconnects += 1
                    except OSError:
                        pass
        for sock in socks.values():
            sock.close()


def test_100_slow_connections_held_30_s_do_not_stop_20_voters(tokens, tmp_path):
    kit = provision(tokens, tmp_path)
    service = Service.open(kit.load())
    try:
        codes = open_election(service, VOTERS)
    finally:
        service.close()
    # Everything comes from 127.0.0.1 here: the voters say who they are through a trusted
    # proxy's X-Forwarded-For (as behind nginx), so the attacker's own rate limits stay its own.
    server = ServeProcess(kit.config_path, tmp_path / "serve.log", "--threads", "64",
                          HSM_SIGNER_WEB_PROXY_FIX_X_FOR="1").start()
    attack = Slowloris(server.port, SLOW)
    try:
        attack.thread.start()
        time.sleep(2.0)  # every thread that will be taken is taken

        def vote(n: int) -> tuple[int, bytes, float]:
            began = time.monotonic()
            request = urllib.request.Request(
                f"{server.url}/api/v1/elections/{ELECTION}/ballots", method="POST",
                data=json.dumps({"code": codes[n], "selections": VOTE}).encode(),
                headers={"Content-Type": "application/json", "X-Forwarded-For": f"198.51.100.{n + 1}"})
            try:
                with urllib.request.urlopen(request, timeout=HOLD) as response:
                    status, body = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
            return status, body, time.monotonic() - began

        started = time.monotonic()
        with ThreadPoolExecutor(VOTERS) as pool:
            results = list(pool.map(vote, range(VOTERS)))
        voting = time.monotonic() - started
        attack.stop.wait(max(0.0, HOLD - (time.monotonic() - started) - 2.0))  # hold the full 30 s
    finally:
        attack.stop.set()
        attack.thread.join(timeout=30)
        server.stop()
    bundle = _bundle(kit)
    for status, body, _ in results:
        assert status == 201, body
        verify_receipt(Receipt.from_json(body), bundle)
    slowest = max(seconds for _, _, seconds in results)
    print(f"{VOTERS} receipts in {voting:.1f} s (slowest {slowest:.1f} s) beside {SLOW} slow connections "
          f"({attack.reconnects} reconnections after being dropped)")
    assert attack.reconnects > 0  # the server did drop them (and they came back)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def _bundle(kit):
    from hsm_signer.bundle import KeyBundle
    return KeyBundle.load(kit.directory / "keys")


def test_the_read_deadline_never_cuts_off_a_large_answer_to_a_slow_reader():
    """Only reads have a deadline: a big record.zip to a client that pauses must still arrive."""
    from hsm_signer.commands.gunicorn_worker import DeadlineSocket

    server_end, client_end = socket.socketpair()
    server = DeadlineSocket.adopt(server_end)
    server.read_timeout = 0.5
    server.setblocking(True)
    try:
        client_end.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert server.recv(1024).startswith(b"GET /")  # the request, read within its deadline
        assert server.recv(1024) == b""                # nothing more within it: the client is "gone"
        answer = b"x" * (16 << 20)
        received = bytearray()

        def slow_reader():
            time.sleep(1.5)  # longer than the read deadline, before reading anything
            while len(received) < len(answer):
                received.extend(client_end.recv(1 << 20))

        reader = threading.Thread(target=slow_reader)
        reader.start()
        server.sendall(answer)  # blocking, as gunicorn wrote it: no timeout on writes
        reader.join(timeout=60)
        assert len(received) == len(answer)
    finally:
        server.close()
        client_end.close()
