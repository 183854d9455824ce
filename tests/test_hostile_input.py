"""Hostile input is bounded before it reaches SQLite, ``int()`` or recursion (issue 13).

Each test is named after an input that once gave a 500 or a traceback: a tree size past
SQLite's 64-bit INTEGER, a JSON integer longer than ``int()`` accepts (4,300 digits),
JSON nested deeper than the parser's recursion. The service answers 400 with a stable
error code; ``hsm-signer verify`` says in one line what is wrong.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from hsm_signer.canonical import MAX_DEPTH, MAX_INTEGER_DIGITS, loads_strict
from hsm_signer.errors import FormatError
from hsm_signer.log.checkpoint import Checkpoint

from harness import HSM_SIGNER_COMMAND
from servicekit import DEMO_ELECTION

API = f"/api/v1/elections/{DEMO_ELECTION['id']}"
HUGE_INTEGER = "1" * 5000  # past int()'s 4,300-digit limit
DEEP = "[" * 5000 + "]" * 5000  # past the json module's recursion limit


# --- the strict JSON reader ------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (f'{{"a": {HUGE_INTEGER}}}', "integer of 5000 digits"),
    (f'{{"a": -{"9" * (MAX_INTEGER_DIGITS + 1)}}}', f"integer of {MAX_INTEGER_DIGITS + 1} digits"),
    (DEEP, f"more than {MAX_DEPTH} deep"),
    ('{"a": ' * 40 + "1" + "}" * 40, f"more than {MAX_DEPTH} deep"),
])
def test_loads_strict_refuses_huge_integers_and_deep_nesting_with_a_format_error(data, message):
    with pytest.raises(FormatError, match=message):
        loads_strict(data)


def test_brackets_inside_strings_and_the_deepest_allowed_nesting_still_parse():
    text = json.dumps({"s": "[" * 100 + "{" * 100 + '\\"]'})
    assert loads_strict(text)["s"].startswith("[[[")
    nested = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert loads_strict(nested) is not None
    assert loads_strict("9" * MAX_INTEGER_DIGITS) == int("9" * MAX_INTEGER_DIGITS)


def test_a_checkpoint_with_a_5000_digit_size_is_a_format_error_not_a_value_error():
    with pytest.raises(FormatError, match="tree size"):
        Checkpoint.from_text(f"origin\n{HUGE_INTEGER}\n{'A' * 43}=\n")


# --- the API -----------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    "checkpoint?size=9223372036854775808",          # 2**63: SQLite's OverflowError
    f"checkpoint?size={'9' * 30}",
    "proof/inclusion?index=9223372036854775808&size=1",
    "proof/consistency?from=0&to=99999999999999999999",
    "entries?start=9223372036854775808",
])
def test_a_query_number_past_64_bits_is_a_400_invalid_parameter_not_a_500(client, codes, query):
    response = client.get(f"{API}/{query}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_parameter"


@pytest.mark.parametrize("query, message", [
    ("proof/inclusion?index=0&size=", "must be an integer"),      # found by Schemathesis: was the default size
    ("checkpoint?size=", "must be an integer"),
    ("entries?start=0&end=", "must be an integer"),
    ("entries?start=0&start=1", "given 2 times"),                  # found by Schemathesis: the first one won
    ("proof/consistency?from=0&from=1&to=1", "given 2 times"),
])
def test_an_empty_or_repeated_query_number_is_a_400_not_the_default(client, codes, query, message):
    response = client.get(f"{API}/{query}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_parameter"
    assert message in response.get_json()["message"]


def test_the_largest_64_bit_size_is_a_plain_not_found(client, codes):
    response = client.get(f"{API}/checkpoint?size=9223372036854775807")
    assert (response.status_code, response.get_json()["error"]) == (404, "checkpoint_not_found")


@pytest.mark.parametrize("body, message", [
    (f'{{"code": {HUGE_INTEGER}}}', "integer of 5000 digits"),
    (f'{{"code": "x", "selections": {DEEP}}}', "deep"),
])
@pytest.mark.parametrize("path", ["ballots", "code-status"])
def test_a_huge_integer_or_deep_json_body_is_a_400_invalid_json_not_a_500(client, codes, path, body, message):
    response = client.post(f"{API}/{path}", data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"] == "invalid_json"
    assert message in response.get_json()["message"]


# --- hsm-signer verify -------------------------------------------------------------------

def _receipt_text(leaf_index: str) -> str:
    return ('{"version": "hsm-signer/receipt/v1", "election": "e", "leaf_index": ' + leaf_index
            + ', "leaf": "", "inclusion_proof": [], "checkpoint": ""}')


@pytest.mark.parametrize("content, reason", [
    (_receipt_text(HUGE_INTEGER), "integer of 5000 digits"),
    (DEEP, "deep"),
    ("[" * 200_000, "deep"),
    ("x" * (1 << 20) + "x", "larger than"),
])
def test_verify_gives_a_one_line_reason_for_a_hostile_receipt_never_a_traceback(kit, tmp_path, content, reason):
    path = tmp_path / "receipt.json"
    path.write_text(content)
    done = subprocess.run([*HSM_SIGNER_COMMAND, "verify", str(path), "--keys", str(kit.load().key_bundle)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hsm-signer: FAILED: ") and reason in lines[0], done.stderr


def test_verify_gives_a_one_line_reason_for_a_hostile_consistency_proof(client, codes, kit, tmp_path):
    cast = client.post(f"{API}/ballots", json={"code": codes[0], "selections": {"leader": ["bob"], "board": []}})
    assert cast.status_code == 201
    receipt, later, proof = tmp_path / "r.json", tmp_path / "later.txt", tmp_path / "proof.json"
    receipt.write_text(json.dumps(cast.get_json()))
    later.write_text(cast.get_json()["checkpoint"])
    proof.write_text(DEEP)
    done = subprocess.run([*HSM_SIGNER_COMMAND, "verify", str(receipt), "--keys", str(kit.load().key_bundle),
                           "--checkpoint", str(later), "--proof", str(proof)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"hsm-signer: FAILED: {proof}: JSON nests arrays and objects more than {MAX_DEPTH} deep"]
