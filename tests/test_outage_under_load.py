"""An HSM outage while clients cast at once: every answer a 503 or a receipt, never a 500.

The network HSM is a SoftHSM token behind ``p11-kit server``; the outage is killing its
process group (``P11KitServer.stop``) while six clients stream ballots into a live
``hsm-signer serve``. Then: no 500 and no answer but 200/201/503, every 503 says why
(``hsm_unavailable``: nothing stored; ``receipt_pending``: stored, ask again) with
``Retry-After``, every receipt verifies (no receipt without a signature), health is back
within 2 s of the HSM's return, and every code ends with exactly one ballot in the log.
Bounded: 6 clients, 60 codes, a 3 s outage.
"""

from __future__ import annotations

import json
import queue
import threading
import time

from harness import P11KitServer
from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_live import ServeProcess, http

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["bob"], "board": ["erin"]}
CODES = 60
CLIENTS = 6
OUTAGE = 3.0


def test_an_hsm_outage_under_concurrent_load_answers_503_never_500_and_heals(
        tokens, tmp_path, p11kit_client_module, p11kit_socket):
    kit = provision(tokens, tmp_path, module=p11kit_client_module, batch_size=8)
    hsm_server = P11KitServer(kit.token, p11kit_socket).start()
    service = Service.open(kit.load())
    try:
        codes = open_election(service, CODES)
    finally:
        service.close()
    server = ServeProcess(kit.config_path, tmp_path / "serve.log",
                          HSM_SIGNER_WEB_RATELIMIT_DEFAULT="1000000 per minute").start()
    todo: queue.Queue[str] = queue.Queue()
    for code in codes:
        todo.put(code)
    answers: list[tuple[int, str | None, str | None]] = []  # (status, error code, Retry-After)
    receipts: dict[str, bytes] = {}
    lock = threading.Lock()
    received = threading.Semaphore(0)
    stop = threading.Event()

    def client() -> None:
        url = f"{server.url}/api/v1/elections/{ELECTION}/ballots"
        while not stop.is_set():
            try:
                code = todo.get_nowait()
            except queue.Empty:
                return
            for _ in range(200):  # a patient client: the same ballot again until it has its receipt
                status, headers, body = http("POST", url, {"code": code, "selections": VOTE}, timeout=30)
                error = json.loads(body).get("error") if status >= 400 else None
                with lock:
                    answers.append((status, error, headers.get("Retry-After")))
                if status in (200, 201):
                    with lock:
                        receipts[code] = body
                    received.release()
                    break
                if status != 503 or stop.is_set():
                    return
                time.sleep(0.2)  # (Retry-After says 1 to 5 s; a hurried client tries sooner)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(12):
            assert received.acquire(timeout=60), "receipts did not flow before the outage"
        hsm_server.stop()  # the outage, in the middle of the stream
        during = len(answers)
        time.sleep(OUTAGE)
        assert len(answers) > during, "no request met the outage"
        hsm_server.start()
        back = time.monotonic()
        for _ in range(100):
            if http("GET", server.url + "/api/v1/health", timeout=5)[0] == 200:
                break
            time.sleep(0.05)
        healthy_after = time.monotonic() - back
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
    finally:
        stop.set()
        server.stop()
        hsm_server.stop()
    print(f"{len(answers)} answers: " + ", ".join(
        f"{n} × {s}{' ' + e if e else ''}" for (s, e), n in sorted(_count(answers).items()))
        + f"; healthy {healthy_after:.2f} s after the HSM returned")

    assert {status for status, _, _ in answers} <= {200, 201, 503}  # never a 500
    outage_answers = [(error, retry) for status, error, retry in answers if status == 503]
    assert outage_answers, "the outage produced no 503"
    assert all(error in ("hsm_unavailable", "receipt_pending") and retry and int(retry) >= 1
               for error, retry in outage_answers)
    assert healthy_after <= 2.0
    # Every code has its receipt, and every receipt carries a valid HSM signature.
    assert sorted(receipts) == sorted(codes)
    bundle = _bundle(kit)
    ballot_ids = {verify_receipt(Receipt.from_json(body), bundle).ballot_id for body in receipts.values()}
    # Exactly one ballot per code: as many distinct ballots as codes, and the log holds just those.
    assert len(ballot_ids) == CODES
    check = Service.open(kit.load(), hsm_may_be_away=True)
    try:
        assert check.storage.tree_size(ELECTION) == CODES
        assert check.storage.count_codes(ELECTION)["unused"] == 0
    finally:
        check.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def _count(answers):
    counts: dict = {}
    for status, error, _ in answers:
        counts[(status, error)] = counts.get((status, error), 0) + 1
    return counts


def _bundle(kit):
    from hsm_signer.bundle import KeyBundle
    return KeyBundle.load(kit.directory / "keys")
