"""Casting sealed ballots through the API: sealed by the server at once, or by the client.

The service seals every ballot to the election's sealing key (the voter's browser does it
itself, or the server does it the moment it has validated the selections) and stores only
leaf v2: never the clear selections. These tests open what was stored with the sealing
key's software twin (the real one lives in the HSM; the tally opens with it) to show that
the right vote is inside, and that no byte the server keeps or answers holds it in clear.
"""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.ballots import CodeUsedError
from hsm_signer.log import hpke, sealed
from hsm_signer.log.leaf import SealedLeaf, parse_leaf
from hsm_signer.log.receipt import Receipt

from servicekit import DEMO_ELECTION

ELECTION = DEMO_ELECTION["id"]
VOTE = {"leader": ["carol"], "board": ["erin", "dan"]}
API = "/api/v1"


def open_leaf(private, leaf_bytes: bytes, size: int) -> dict:
    leaf = parse_leaf(leaf_bytes)
    assert isinstance(leaf, SealedLeaf)
    info = sealed.sealing_info(leaf.election, leaf.channel, leaf.ballot_id)
    return sealed.decode_plaintext(hpke.open_with_private_key(private, info, leaf.sealed), size)


def post(client, body: dict):
    return client.post(f"{API}/elections/{ELECTION}/ballots", json=body)


def seal_like_a_browser(election: dict, selections: dict, ballot_id: str | None = None, channel="online") -> dict:
    ballot_id = ballot_id or secrets.token_hex(16)
    box = sealed.seal_ballot(base64.b64decode(election["sealing_key"]), ELECTION, channel, ballot_id, selections,
                             election["padded_size"])
    return {"ballot_id": ballot_id, "ciphertext": base64.b64encode(box).decode()}


def test_the_election_publishes_its_sealing_key_and_padded_size(client, service, codes, sealing_key):
    election = client.get(f"{API}/elections/{ELECTION}").get_json()
    assert base64.b64decode(election["sealing_key"]) == hpke.public_key_bytes(sealing_key.public_key())
    assert election["padded_size"] == sealed.padded_size(service.storage.get_election(ELECTION).election) == 64
    assert election["sealed_format"] == sealed.SEALED_FORMAT


def test_the_server_seals_selections_at_once_and_keeps_only_the_sealed_leaf(client, service, codes, sealing_key):
    response = post(client, {"code": codes[0], "selections": VOTE})
    assert response.status_code == 201
    receipt = Receipt.from_dict(response.get_json())
    text = response.get_data(as_text=True)
    assert not any(option in text for option in ("carol", "erin", "dan"))
    assert open_leaf(sealing_key, receipt.leaf, 64) == {"board": ["dan", "erin"], "leader": ["carol"]}
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    assert stored == receipt.leaf and b"carol" not in stored

    again = post(client, {"code": codes[0], "selections": {"board": ["dan", "erin"], "leader": ["carol"]}})
    assert again.status_code == 200 and again.get_json() == response.get_json()
    other = post(client, {"code": codes[0], "selections": {"leader": ["bob"], "board": []}})
    assert other.status_code == 409 and other.get_json()["error"] == "code_used"
    assert service.storage.tree_size(ELECTION) == 1


def test_a_client_sealed_ballot_is_stored_as_sent_and_opens_to_the_vote(client, service, codes, sealing_key):
    election = client.get(f"{API}/elections/{ELECTION}").get_json()
    body = {"code": codes[1], "sealed": seal_like_a_browser(election, {"leader": ["alice"], "board": ["frank"]})}
    response = post(client, body)
    assert response.status_code == 201, response.get_json()
    leaf = parse_leaf(Receipt.from_dict(response.get_json()).leaf)
    assert leaf.ballot_id == body["sealed"]["ballot_id"] and leaf.type == "ballot"
    assert base64.b64encode(leaf.sealed).decode() == body["sealed"]["ciphertext"]
    assert open_leaf(sealing_key, leaf.to_bytes(), 64) == {"board": ["frank"], "leader": ["alice"]}

    assert post(client, body).get_json() == response.get_json()  # the identical payload again: same receipt
    resealed = {"code": codes[1], "sealed": seal_like_a_browser(election, {"leader": ["alice"], "board": ["frank"]})}
    assert post(client, resealed).status_code == 409  # the same vote sealed again is another ballot
    assert post(client, {"code": codes[1], "selections": {"leader": ["alice"], "board": ["frank"]}}).status_code == 409


def test_a_client_sealed_ballot_is_checked_before_it_consumes_a_code(client, service, codes, sealing_key):
    election = client.get(f"{API}/elections/{ELECTION}").get_json()
    good = seal_like_a_browser(election, VOTE)
    raw = base64.b64decode(good["ciphertext"])
    not_a_point = bytes([4]) + bytes(64) + raw[65:]
    cases = [
        ({"ballot_id": good["ballot_id"], "ciphertext": base64.b64encode(raw[:-1]).decode()}, 422, "bytes, got"),
        ({"ballot_id": good["ballot_id"], "ciphertext": base64.b64encode(raw + b"\0").decode()}, 422, "bytes, got"),
        ({"ballot_id": good["ballot_id"], "ciphertext": base64.b64encode(not_a_point).decode()}, 422, "P-256"),
        ({"ballot_id": good["ballot_id"].upper(), "ciphertext": good["ciphertext"]}, 422, "32 lowercase hex"),
        ({"ballot_id": good["ballot_id"], "ciphertext": "not base64!"}, 422, "not valid base64"),
        ({"ballot_id": good["ballot_id"]}, 400, "missing field 'ciphertext'"),
        ({"ballot_id": good["ballot_id"], "ciphertext": good["ciphertext"], "selections": VOTE}, 400, "unknown field"),
    ]
    for sealed_body, status, words in cases:
        answer = post(client, {"code": codes[2], "sealed": sealed_body})
        assert answer.status_code == status and words in answer.get_json()["message"], (sealed_body, answer.get_json())
    both = post(client, {"code": codes[2], "sealed": good, "selections": VOTE})
    assert both.status_code == 400
    assert service.storage.count_codes(ELECTION)["unused"] == 10

    assert post(client, {"code": codes[2], "sealed": good}).status_code == 201
    replayed = post(client, {"code": codes[3], "sealed": good})  # someone else's ballot id (and bytes) again
    assert replayed.status_code == 422 and "already in the log" in replayed.get_json()["message"]
    assert service.storage.count_codes(ELECTION)["online"] == 1


def test_a_postal_ballot_is_sealed_by_the_server_for_the_postal_channel(service, codes, sealing_key):
    receipt = service.ballots.cast(ELECTION, codes[4], {"leader": ["bob"], "board": []}, channel="postal").receipt
    leaf = parse_leaf(receipt.leaf)
    assert isinstance(leaf, SealedLeaf) and leaf.type == "postal" and leaf.channel == "postal"
    assert open_leaf(sealing_key, receipt.leaf, 64) == {"board": [], "leader": ["bob"]}
    with pytest.raises(hpke.OpeningError):  # bound to the postal channel: it cannot pass as online
        hpke.open_with_private_key(sealing_key, sealed.sealing_info(ELECTION, "online", leaf.ballot_id), leaf.sealed)
    with pytest.raises(CodeUsedError, match="by post"):
        service.ballots.cast(ELECTION, codes[4], {"leader": ["bob"], "board": []})


def test_the_receipt_names_the_sealed_ballot_by_tracker_says_what_it_proves_and_never_shows_the_vote(
        client, service, codes, sealing_key):
    receipt = service.ballots.cast(ELECTION, codes[5], {"leader": ["carol"], "board": ["frank"]}).receipt
    ballot_id = parse_leaf(receipt.leaf).ballot_id
    base = f"/elections/{ELECTION}/receipts/{ballot_id}"
    page, printable, download = (client.get(base + suffix) for suffix in ("", "/print", "/receipt.json"))
    assert receipt.version == "hsm-signer/receipt/v2" and receipt.tracker in page.text
    assert "It proves" in page.text and "will be counted" in page.text
    assert "It does not show or prove how you voted" in page.text and "After the close" in page.text
    assert "It does not show or prove how you voted" in printable.text
    assert Receipt.from_json(download.data) == receipt
    for answer in (page, printable, download):
        text = answer.get_data(as_text=True)
        assert not any(word in text for word in ("carol", "Carol", "frank", "Frank")), answer.request.path


def test_a_service_without_a_sealing_key_warns_that_ballots_are_stored_in_clear(service, caplog):
    from hsm_signer.web import create_app
    create_app(service=service)
    assert "has no sealing key: ballots are stored as leaf v1, with their selections IN CLEAR" in caplog.text
    caplog.clear()
    service.ballots.sealing_key = hpke.public_key_bytes(ec.generate_private_key(ec.SECP256R1()).public_key())
    create_app(service=service)
    assert "sealing key" not in caplog.text


def test_without_javascript_the_server_seals_what_the_form_posted_and_only_its_answer_shows_the_choices(
        client, service, codes, sealing_key):
    from test_web_vote import receipt_link, vote

    cast, _confirm = vote(client, codes[6], [("sel-leader", "alice"), ("sel-board", "erin")])
    assert cast.status_code == 200 and "You chose" in cast.text and "Alice" in cast.text
    (stored,) = service.storage.entries(ELECTION, 0, 1)
    assert open_leaf(sealing_key, stored, 64) == {"board": ["erin"], "leader": ["alice"]}
    page = client.get(receipt_link(cast.text))
    assert page.status_code == 200 and "Alice" not in page.text and "Erin" not in page.text


def test_the_voting_page_carries_the_sealing_key_and_its_script_only_when_there_is_one(client, service, codes):
    """The code page is where the script runs (the whole vote, sealed in the browser); the
    pages of the form-only path (no JavaScript, server-sealed) carry no script either way."""
    from test_web_vote import step, token_of

    def pages(code):
        start = client.get(f"/elections/{ELECTION}/vote")
        ballot = step(client, f"/elections/{ELECTION}/vote/ballot", {"code": code, "csrf_token": token_of(start.text)})
        return start.text, ballot.text
    plain, plain_ballot = pages(codes[7])
    assert "<script" not in plain and "data-sealing-key" not in plain
    private = ec.generate_private_key(ec.SECP256R1())
    service.ballots.sealing_key = hpke.public_key_bytes(private.public_key())
    sealing, sealing_ballot = pages(codes[8])
    assert f'data-sealing-key="{base64.b64encode(service.ballots.sealing_key).decode()}"' in sealing
    assert 'data-padded-size="64"' in sealing and 'src="/static/js/vote-page.js"' in sealing
    for form_only in (plain_ballot, sealing_ballot):
        assert "<script" not in form_only and "data-sealing-key" not in form_only and 'name="sel-leader"' in form_only


def test_the_openapi_receipt_schema_describes_receipt_v2_and_v1(client, service, codes):
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # schemathesis' validator (the test extra)
    from hsm_signer.web.openapi import document
    schema = jsonschema_rs.Draft202012Validator(document()["components"]["schemas"]["Receipt"])
    v1 = post(client, {"code": codes[0], "selections": VOTE}).get_json()
    private = ec.generate_private_key(ec.SECP256R1())
    service.ballots.sealing_key = hpke.public_key_bytes(private.public_key())
    v2 = post(client, {"code": codes[1], "selections": VOTE}).get_json()
    assert (v1["version"], v2["version"]) == ("hsm-signer/receipt/v1", "hsm-signer/receipt/v2")
    assert schema.is_valid(v1) and schema.is_valid(v2)
    assert not schema.is_valid({k: v for k, v in v2.items() if k != "tracker"})
    assert not schema.is_valid({**v1, "tracker": v2["tracker"]})


def test_without_a_sealing_key_ballots_are_refused_unless_the_configuration_allows_them_in_clear(service, codes):
    from hsm_signer.ballots import ClearBallotsRefusedError
    from hsm_signer.web import create_app
    assert service.config.voting.allow_clear_ballots  # the test kit's bundle has no sealing key and says so
    service.ballots.allow_clear_ballots = False  # as a configuration without the setting
    with pytest.raises(ClearBallotsRefusedError, match="voting.allow_clear_ballots: the key bundle has no sealing key"):
        service.ballots.cast(ELECTION, codes[0], VOTE)
    with pytest.raises(ClearBallotsRefusedError):
        create_app(service=service)
    assert service.storage.count_codes(ELECTION)["unused"] == 10
