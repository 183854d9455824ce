"""kill -9 of the server in the middle of a stream of ballots loses nothing.

Several client threads cast ballots against ``hsm-signer serve``; once receipts are
flowing the server (gunicorn master and worker) gets SIGKILL. After a restart:
every receipt a client received verifies against the newest checkpoint (with a
consistency proof), every consumed code has exactly one ballot in the log (found
through the code itself), ballots in flight at the crash are either fully stored or not
at all (resending gives 200 or 201, never 409), and no ballot is stored twice.
"""

from __future__ import annotations

import base64
import json
import queue
import random
import threading
import time
from http.client import HTTPException

from hsm_signer.log.leaf import Leaf
from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt

from servicekit import DEMO_ELECTION, open_election, provision
from test_web_live import ServeProcess, cli, http

ELECTION = DEMO_ELECTION["id"]
CODES = 160
CLIENTS = 6
KILL_AFTER_RECEIPTS = 40
UNLIMITED = {"HSM_SIGNER_WEB_RATELIMIT_DEFAULT": "1000000 per minute"}


def random_ballot(rng: random.Random) -> dict:
    return {"leader": rng.sample(["alice", "bob", "carol"], rng.randint(0, 1)),
            "board": rng.sample(["dan", "erin", "frank"], rng.randint(0, 2))}


def test_kill_9_mid_stream_loses_no_ballot_and_stores_none_twice(tokens, tmp_path):
    kit = provision(tokens, tmp_path, batch_size=8)
    service = Service.open(kit.load())  # the test's own view: storage, bundle and the code HMAC
    try:
        codes = open_election(service, CODES)
        sent: dict[str, dict] = {}          # code -> selections, for every code a client sent
        receipts: dict[str, bytes] = {}     # code -> receipt body the client received
        uncertain: set[str] = set()         # code in flight when the server died
        todo: queue.Queue[str] = queue.Queue()
        for code in codes:
            todo.put(code)
        server = ServeProcess(kit.config_path, tmp_path / "serve.log", **UNLIMITED).start()
        received = threading.Semaphore(0)
        lock = threading.Lock()

        def client(seed: int) -> None:
            rng = random.Random(seed)
            url = f"{server.url}/api/v1/elections/{ELECTION}/ballots"
            while True:
                try:
                    code = todo.get_nowait()
                except queue.Empty:
                    return
                ballot = random_ballot(rng)
                with lock:
                    sent[code] = ballot
                try:
                    status, _, body = http("POST", url, {"code": code, "selections": ballot}, timeout=15)
                except (OSError, HTTPException):  # refused, reset, or cut mid-answer
                    with lock:
                        uncertain.add(code)
                    return  # the server is gone
                assert status == 201, body
                with lock:
                    receipts[code] = body
                received.release()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for _ in range(KILL_AFTER_RECEIPTS):
            assert received.acquire(timeout=60), "receipts stopped flowing"
        server.kill9()
        for thread in threads:
            thread.join(timeout=60)
        assert len(receipts) >= KILL_AFTER_RECEIPTS and uncertain, "the crash did not hit the stream"

        server.start()  # same config, same database, same signer state
        try:
            deadline = time.monotonic() + 30
            while service.storage.elections_with_pending() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not service.storage.elections_with_pending(), "stored ballots were not sequenced after restart"
            api = f"{server.url}/api/v1/elections/{ELECTION}"
            latest = json.loads(http("GET", api + "/checkpoint")[2])

            # 1. Every receipt a client received verifies against the newest checkpoint.
            for body in receipts.values():
                receipt = Receipt.from_json(body)
                size = _checkpoint_size(receipt)
                proof = json.loads(http("GET", api + f"/proof/consistency?from={size}&to={latest['size']}")[2])
                verify_receipt(receipt, service.bundle, latest["checkpoint"],
                               [base64.b64decode(h) for h in proof["proof"]])
            any_receipt = tmp_path / "receipt.json"
            any_receipt.write_bytes(next(iter(receipts.values())))
            cli(kit.config_path, "verify", str(any_receipt), "--keys", str(kit.directory / "keys"),
                "--server", server.url)

            # 2. Every consumed code has exactly one ballot in the log, and it is the one sent:
            #    the code tells only "online"; the identical ballot sent again (within the
            #    resubmission window) gets that ballot's receipt.
            leaves = [Leaf.from_bytes(raw) for raw in service.storage.entries(ELECTION, 0, latest["size"])]
            by_ballot = {leaf.ballot_id: leaf for leaf in leaves}
            consumed = {}
            for code in codes:
                status = service.ballots.code_status(ELECTION, code)
                if status.status == "unused":
                    assert code not in receipts
                    continue
                assert status.status == "online" and code in sent
                again, _, body = http("POST", api + "/ballots", {"code": code, "selections": sent[code]})
                assert again == 200, body
                leaf = by_ballot[Leaf.from_bytes(Receipt.from_json(body).leaf).ballot_id]
                assert {k: list(v) for k, v in leaf.selections.items()} == \
                    {k: sorted(v) for k, v in sent[code].items()}
                consumed[code] = leaf.ballot_id
            for code, body in receipts.items():
                assert Leaf.from_bytes(Receipt.from_json(body).leaf).ballot_id == consumed[code]

            # 3. No ballot stored twice: one leaf per consumed code, nothing else, no repeats.
            assert len(leaves) == len(by_ballot) == len(consumed) == len(set(consumed.values()))
            assert service.storage.tree_size(ELECTION) == latest["size"] == len(consumed)

            # 4. A ballot in flight at the crash was stored whole or not at all: resending it
            #    is idempotent (200) or a first cast (201), never a conflict.
            for code in uncertain:
                status, _, body = http("POST", api + "/ballots", {"code": code, "selections": sent[code]})
                assert status == (200 if code in consumed else 201), body
        finally:
            assert server.stop() == 0
    finally:
        service.close()


def _checkpoint_size(receipt: Receipt) -> int:
    from hsm_signer.log.checkpoint import Checkpoint
    from hsm_signer.log.note import parse_note
    return Checkpoint.from_text(parse_note(receipt.checkpoint)[0]).size
