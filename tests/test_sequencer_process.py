"""`hsm-signer sequencer` as its own process beside web workers that never sign."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hsm_signer.log.receipt import Receipt
from hsm_signer.service import Service
from hsm_signer.verify import verify_receipt
from hsm_signer.web import create_app

from servicekit import DEMO_ELECTION, open_election

REPO = Path(__file__).resolve().parent.parent
ELECTION = DEMO_ELECTION["id"]


def test_a_separate_sequencer_signs_for_web_workers_and_stops_on_sigterm(kit, tmp_path):
    setup = Service.open(kit.load())  # no sequencer here
    try:
        codes = open_election(setup, 3)
    finally:
        setup.close()
    log = (tmp_path / "sequencer.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "hsm_signer", "--config", str(kit.config_path), "sequencer"],
                               env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=subprocess.STDOUT)
    app = create_app(kit.config_path, test_config={"TESTING": True})
    try:
        client = app.test_client()
        deadline = time.monotonic() + 30
        while client.get("/api/v1/health").get_json()["sequencer"]["status"] != "ok":
            assert process.poll() is None, (tmp_path / "sequencer.log").read_text()
            assert time.monotonic() < deadline, "the sequencer never reported"
            time.sleep(0.1)
        assert app.extensions["hsm_signer"].service.sequencer is None  # this worker never signs
        response = client.post(f"/api/v1/elections/{ELECTION}/ballots",
                               json={"code": codes[0], "selections": {"leader": ["alice"], "board": []}})
        assert response.status_code == 201, response.get_json()
        verify_receipt(Receipt.from_dict(response.get_json()), app.extensions["hsm_signer"].service.bundle)
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=30)
        app.extensions["hsm_signer"].service.close()
    assert status == 0, (tmp_path / "sequencer.log").read_text()
    assert "sequencer running" in (tmp_path / "sequencer.log").read_text()
