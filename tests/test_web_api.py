"""The JSON API through the Flask test client: a voter's whole story and the public log.

Issue codes, cast, get a receipt that verifies offline (in-process and with the
``hsm-signer verify`` command), cast again (idempotent 200 / different ballot 409),
record a postal ballot, reject a postal duplicate, check code status, then read the log
back through the proof, entry, checkpoint, tally and key endpoints.
"""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from hsm_signer.ballots import CodeUsedError
from hsm_signer.log.leaf import Leaf
from hsm_signer.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from hsm_signer.log.checkpoint import Checkpoint
from hsm_signer.log.note import parse_note
from hsm_signer.log.receipt import Receipt
from hsm_signer.verify import verify_receipt
from hsm_signer.web import create_app
from hsm_signer.web.errors import ERRORS
from hsm_signer.web.openapi import document

from harness import HSM_SIGNER_COMMAND
from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}
API = "/api/v1"


def cast(client, code, selections=VOTE, election=ELECTION):
    return client.post(f"{API}/elections/{election}/ballots", json={"code": code, "selections": selections})


def verify_cli(receipt_json: str, keys, tmp_path) -> subprocess.CompletedProcess:
    """``hsm-signer verify RECEIPT --keys BUNDLE`` as a voter would run it."""
    path = tmp_path / "receipt.json"
    path.write_text(receipt_json)
    return subprocess.run([*HSM_SIGNER_COMMAND, "verify", str(path), "--keys", str(keys)],
                          capture_output=True, text=True, timeout=60)


def test_a_voter_casts_through_the_api_and_the_receipt_verifies_offline(client, service, codes, kit, tmp_path):
    listed = client.get(f"{API}/elections").get_json()["elections"]
    assert [(e["id"], e["state"]) for e in listed] == [(ELECTION, "open")]
    election = client.get(f"{API}/elections/{ELECTION}").get_json()
    assert [c["id"] for c in election["contests"]] == ["leader", "board"]

    response = cast(client, codes[0])
    assert response.status_code == 201
    assert list(response.get_json()) == ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"]
    receipt = Receipt.from_dict(response.get_json())
    verified = verify_receipt(receipt, service.bundle)
    assert verified.election == ELECTION
    assert dict(Leaf.from_bytes(receipt.leaf).selections) == {"leader": ("carol",), "board": ("dan", "erin")}

    result = verify_cli(response.get_data(as_text=True), kit.directory / "keys", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: election test-election")


def test_the_same_ballot_again_returns_the_original_receipt_and_another_ballot_is_a_conflict(client, service, codes):
    first = cast(client, codes[0])
    assert first.status_code == 201
    again = cast(client, codes[0].lower().replace("-", " "), {"board": ["dan", "erin"], "leader": ["carol"]})
    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    other = cast(client, codes[0], {"leader": ["alice"], "board": []})
    assert other.status_code == 409
    assert other.get_json() == {"error": "code_used", "code_status": "online",
                                "message": "this voting code has already been used online for a different ballot"}
    assert service.storage.tree_size(ELECTION) == 1


def test_a_ballot_arriving_during_shutdown_is_refused_with_503_and_not_stored(client, service, codes):
    service.ballots.close()  # what Service.close does first when the worker stops
    answer = cast(client, codes[0])
    assert answer.status_code == 503 and answer.json["error"] == "unhealthy"
    assert "not stored" in answer.json["message"] and answer.headers["Retry-After"] == "5"
    assert service.ballots.code_status(ELECTION, codes[0]).status == "unused"


def test_code_status_tells_only_unused_online_or_postal_never_the_ballot(client, service, codes):
    def status(code):
        response = client.post(f"{API}/elections/{ELECTION}/code-status", json={"code": code})
        assert response.status_code == 200
        return response.get_json()

    assert status(codes[1]) == {"status": "unused"}
    receipt = cast(client, codes[1]).get_json()
    ballot_id = Leaf.from_bytes(base64.b64decode(receipt["leaf"])).ballot_id
    online = client.post(f"{API}/elections/{ELECTION}/code-status", json={"code": codes[1]})
    assert online.get_json() == {"status": "online"}
    assert ballot_id not in online.get_data(as_text=True) and receipt["leaf"] not in online.get_data(as_text=True)

    service.ballots.cast(ELECTION, codes[2], VOTE, channel="postal")  # the official records a postal ballot
    assert status(codes[2]) == {"status": "postal"}
    postal_then_online = cast(client, codes[2])
    assert postal_then_online.status_code == 409
    assert postal_then_online.get_json()["code_status"] == "postal"
    with pytest.raises(CodeUsedError):  # a postal ballot for a code used online is a rejected duplicate
        service.ballots.cast(ELECTION, codes[1], VOTE, channel="postal")


def test_the_log_endpoints_prove_inclusion_and_consistency(client, service, codes):
    receipts = [Receipt.from_dict(cast(client, code, {"leader": [o], "board": []}).get_json())
                for code, o in zip(codes[:5], ["alice", "bob", "carol", "alice", "bob"])]
    latest = client.get(f"{API}/elections/{ELECTION}/checkpoint").get_json()
    assert latest["size"] == 5
    root = Checkpoint.from_text(parse_note(latest["checkpoint"])[0]).root_hash
    # The election publishes the origin its checkpoints carry, so verifiers know which log to expect.
    origin = client.get(f"{API}/elections/{ELECTION}").get_json()["origin"]
    assert origin == Checkpoint.from_text(parse_note(latest["checkpoint"])[0]).origin == f"test.hsm-signer.invalid/{ELECTION}"

    first = receipts[0]
    first_size = Checkpoint.from_text(parse_note(first.checkpoint)[0]).size
    exact = client.get(f"{API}/elections/{ELECTION}/checkpoint?size={first_size}").get_json()
    assert exact == {"size": first_size, "checkpoint": first.checkpoint}

    for receipt in receipts:
        proof = client.get(f"{API}/elections/{ELECTION}/proof/inclusion?index={receipt.leaf_index}&size=5").get_json()
        verify_inclusion(leaf_hash(receipt.leaf), receipt.leaf_index, 5,
                         [base64.b64decode(h) for h in proof["proof"]], root)
    consistency = client.get(f"{API}/elections/{ELECTION}/proof/consistency?from={first_size}&to=5").get_json()
    hashes = [base64.b64decode(h) for h in consistency["proof"]]
    verify_receipt(first, service.bundle, latest["checkpoint"], hashes)
    verify_consistency(first_size, 5, hashes, Checkpoint.from_text(parse_note(first.checkpoint)[0]).root_hash, root)

    page = client.get(f"{API}/elections/{ELECTION}/entries?start=0&end=5").get_json()
    leaves = [base64.b64decode(e) for e in page["entries"]]
    assert sorted(leaves) == sorted(r.leaf for r in receipts)
    assert client.get(f"{API}/elections/{ELECTION}/entries?start=3").get_json()["end"] == 5


def test_tally_is_404_until_signed_and_keys_are_the_published_bundle(client, service, codes, kit):
    missing = client.get(f"{API}/elections/{ELECTION}/tally")
    assert missing.status_code == 404 and missing.get_json()["error"] == "tally_not_found"
    service.storage.store_tally(ELECTION, "a signed tally note\n")
    assert client.get(f"{API}/elections/{ELECTION}/tally").get_json() == {"tally": "a signed tally note\n"}
    keys = client.get(f"{API}/keys")
    assert keys.mimetype == "application/json"
    assert keys.data == (kit.directory / "keys" / "keys.json").read_bytes()


def test_health_reports_the_hsm_and_the_in_process_sequencer(client):
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "hsm": {"status": "ok"},
                                   "sequencer": {"mode": "in-process", "status": "ok"}}


def test_the_openapi_document_describes_every_api_route_and_error_code(client):
    served = client.get(f"{API}/openapi.json").get_json()
    assert served == json.loads(json.dumps(document()))
    assert served["openapi"].startswith("3.")
    routes = {rule.rule.removeprefix(API).replace("<election_id>", "{election_id}")
              for rule in client.application.url_map.iter_rules() if rule.rule.startswith(API)}
    assert routes == set(served["paths"])
    assert set(served["components"]["schemas"]["Error"]["properties"]["error"]["enum"]) == set(ERRORS)


def test_an_app_built_from_the_config_file_leaves_signing_to_a_separate_sequencer(kit, service, codes, monkeypatch):
    """The gunicorn way (``hsm_signer.web:create_app()`` + ``hsm-signer sequencer``): workers never sign."""
    monkeypatch.setenv("HSM_SIGNER_CONFIG", str(kit.config_path))
    monkeypatch.setenv("HSM_SIGNER_WEB_CODE_FAILURES_FREE", "7")
    app = create_app()
    try:
        assert app.config["CODE_FAILURES_FREE"] == 7
        assert app.extensions["hsm_signer_code_attempts"].policy.free == 7
        client = app.test_client()
        health = client.get(f"{API}/health").get_json()
        # The test's own service plays the separate sequencer: its heartbeat reaches this app.
        assert health["sequencer"] == {"mode": "external", "status": "ok"}
        # The app polls for the receipt the other sequencer signs.
        assert cast(client, codes[0]).status_code == 201
    finally:
        app.extensions["hsm_signer"].service.close()
