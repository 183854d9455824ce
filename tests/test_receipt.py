"""Receipt v1 JSON: exact field set and order, strict parsing that names the bad field."""

from __future__ import annotations

import base64
import json

import pytest

from hsm_signer.errors import FormatError
from hsm_signer.log.receipt import RECEIPT_VERSION, Receipt

LEAF = b'{"ballot_id":"00000000000000000000000000000000","election":"e1","selections":{},"type":"ballot","version":"hsm-signer/leaf/v1"}'
HASHES = (b"\x01" * 32, b"\x02" * 32)
NOTE = "hsm-signer/e1\n5\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\n\u2014 k AAAAAAAA\n"
RECEIPT = Receipt(election="e1", leaf_index=3, leaf=LEAF, inclusion_proof=HASHES, checkpoint=NOTE)


def test_receipt_json_has_exactly_the_documented_fields_in_order():
    text = RECEIPT.to_json()
    obj = json.loads(text)
    assert list(obj) == ["version", "election", "leaf_index", "leaf", "inclusion_proof", "checkpoint"]
    assert obj == {
        "version": RECEIPT_VERSION,
        "election": "e1",
        "leaf_index": 3,
        "leaf": base64.b64encode(LEAF).decode(),
        "inclusion_proof": [base64.b64encode(h).decode() for h in HASHES],
        "checkpoint": NOTE,
    }
    assert text.startswith('{\n  "version": "hsm-signer/receipt/v1",\n') and text.endswith("}\n")
    assert "\u2014" in text  # UTF-8, not \u-escaped: the note reads the same inside the JSON


def test_receipt_round_trips_through_json():
    assert Receipt.from_json(RECEIPT.to_json()) == RECEIPT
    assert Receipt.from_json(RECEIPT.to_json().encode("utf-8")) == RECEIPT


def test_an_empty_inclusion_proof_is_allowed_for_a_one_leaf_tree():
    one = Receipt(election="e1", leaf_index=0, leaf=LEAF, inclusion_proof=(), checkpoint=NOTE)
    assert Receipt.from_json(one.to_json()).inclusion_proof == ()


def _mutated(**changes) -> str:
    obj = {**RECEIPT.to_dict(), **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


@pytest.mark.parametrize(
    "text, message",
    [
        (_mutated(version=...), "receipt is missing field\\(s\\): version"),
        (_mutated(leaf=..., checkpoint=...), "missing field\\(s\\): leaf, checkpoint"),
        (_mutated(voter="alice"), "receipt has unknown field\\(s\\): voter"),
        (_mutated(version="hsm-signer/receipt/v0"), "receipt.version must be 'hsm-signer/receipt/v2'"),
        (_mutated(election=5), "receipt.election must be a string, got int"),
        (_mutated(election="E 1"), "receipt.election must match"),
        (_mutated(leaf_index="3"), "receipt.leaf_index must be an integer, got str"),
        (_mutated(leaf_index=True), "receipt.leaf_index must be an integer, got bool"),
        (_mutated(leaf_index=-1), "receipt.leaf_index must be a non-negative integer"),
        (_mutated(leaf="not base64!"), "receipt.leaf is not valid base64"),
        (_mutated(leaf=""), "receipt.leaf must be non-empty bytes"),
        (_mutated(leaf=base64.b64encode(LEAF).decode().rstrip("=") + "A"), "receipt.leaf is not"),
        (_mutated(inclusion_proof="AAAA"), "receipt.inclusion_proof must be a list, got str"),
        (_mutated(inclusion_proof=["AQ==", 7]), "receipt.inclusion_proof\\[0\\] must decode to 32 bytes, got 1"),
        (_mutated(inclusion_proof=[base64.b64encode(b"\x01" * 32).decode(), 7]), "receipt.inclusion_proof\\[1\\] must be a base64 string, got int"),
        (_mutated(inclusion_proof=["%%%%"]), "receipt.inclusion_proof\\[0\\] is not valid base64"),
        (_mutated(checkpoint=["x"]), "receipt.checkpoint must be a string, got list"),
        (_mutated(checkpoint=""), "receipt.checkpoint must be the signed checkpoint note text"),
        ("[]", "receipt must be a JSON object, got list"),
        ('{"version": 1, "version": 2}', "receipt: duplicate key 'version'"),
        ("{", "receipt: not valid JSON"),
        (_mutated(leaf_index=1.0), "receipt: number 1.0 has a fraction"),
    ],
)
def test_malformed_receipts_are_rejected_naming_the_field(text, message):
    with pytest.raises(FormatError, match=message):
        Receipt.from_json(text)


def test_receipts_are_immutable():
    with pytest.raises(AttributeError):
        RECEIPT.leaf_index = 4
    assert isinstance(RECEIPT.inclusion_proof, tuple)
