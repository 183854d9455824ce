"""Checkpoints (c2sp.org/tlog-checkpoint): text form, strict parsing, signing and the signed tally."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.log.checkpoint import (
    Checkpoint,
    check_origin,
    check_origin_prefix,
    election_of_origin,
    legacy_origin,
    open_checkpoint,
    origin_for,
    sign_checkpoint,
)
from hsm_signer.log.note import NoteVerifier
from hsm_signer.signer import ECDSA_P256, ED25519, SoftwareSigner

REKOR = json.loads((Path(__file__).parent / "vectors" / "signed-note" / "transparency-dev-formats-ecdsa.json").read_text())
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()
NAME = "hsm-signer.example/checkpoint"


def test_the_origin_is_a_configured_prefix_then_the_election():
    assert origin_for("vote.example.org", "leader-2026") == "vote.example.org/leader-2026"
    assert origin_for("vote.example.org/party", "leader-2026") == "vote.example.org/party/leader-2026"
    assert legacy_origin("demo-2025") == "hsm-signer/demo-2025"
    with pytest.raises(FormatError, match="election id must match"):
        origin_for("vote.example.org", "Demo 2025")


@pytest.mark.parametrize("prefix", ["", "https://vote.example.org", "vote example", "a+b.example", "vote.example.org/",
                                    "/vote.example.org", "vote..example//x", "x" * 200, "vote.\u00e9xample.org"])
def test_an_origin_prefix_is_a_schema_less_url_without_spaces_or_plus(prefix):
    with pytest.raises(FormatError, match="origin prefix must be a schema-less URL") as caught:
        check_origin_prefix(prefix)
    assert caught.value.code == "checkpoint.origin"


def test_an_origin_names_its_election_in_its_last_segment():
    assert election_of_origin("vote.example.org/leader-2026") == "leader-2026"
    assert election_of_origin("hsm-signer/demo-2025") == "demo-2025"  # records from before origins were configured
    assert check_origin("vote.example.org/leader-2026", "leader-2026") == "vote.example.org/leader-2026"
    for origin in ("leader-2026", "vote.example.org/Leader", "vote.example.org/leader-2026/", "/leader-2026", 5):
        with pytest.raises(FormatError, match="is not <origin prefix>/<election id>"):
            election_of_origin(origin)
    with pytest.raises(FormatError, match="does not name election 'leader-2026'"):
        check_origin("vote.example.org/leader-2027", "leader-2026")


def test_text_form_is_origin_size_root_then_extensions_each_ending_in_newline():
    cp = Checkpoint("hsm-signer/demo", 1234, ROOT)
    assert cp.to_text() == f"hsm-signer/demo\n1234\n{ROOT_B64}\n"
    assert Checkpoint.from_text(cp.to_text()) == cp


def test_the_signed_tally_extension_lines_round_trip_through_a_signed_note():
    tally = Checkpoint(
        origin_for("vote.example.org", "demo"), 9, ROOT, ("tally leader alice 5", "tally leader bob 4", "tally-channel postal 3")
    )
    signer = SoftwareSigner.generate(ED25519)
    note = sign_checkpoint(tally, "hsm-signer.example/tally", signer)
    assert "\ntally leader alice 5\ntally leader bob 4\ntally-channel postal 3\n\n\u2014 " in note
    opened = open_checkpoint(note, [NoteVerifier.from_public_key("hsm-signer.example/tally", signer.public_key_der)])
    assert opened == tally
    assert opened.extensions == tally.extensions


def test_the_published_rekor_checkpoint_parses():
    v = NoteVerifier.from_string(REKOR["verifier_key"])
    cp = open_checkpoint(REKOR["note"], [v])
    assert (cp.origin, cp.size) == (REKOR["checkpoint"]["origin"], REKOR["checkpoint"]["size"])
    assert cp.root_hash == base64.b64decode(REKOR["checkpoint"]["root_hash_base64"])


def test_the_empty_tree_has_size_zero():
    assert Checkpoint.from_text(f"o\n0\n{ROOT_B64}\n").size == 0


@pytest.mark.parametrize(
    "text, message",
    [
        (f"o\n12\n{ROOT_B64}", "checkpoint text must end with a newline"),
        ("o\n12\n", "has 2 line\\(s\\); it needs origin, size and root hash"),
        (f"o\n012\n{ROOT_B64}\n", "line 2 \\(tree size\\) must be a decimal number without leading zeros, got '012'"),
        (f"o\n+12\n{ROOT_B64}\n", "without leading zeros, got '\\+12'"),
        (f"o\n-1\n{ROOT_B64}\n", "without leading zeros, got '-1'"),
        (f"o\n 12\n{ROOT_B64}\n", "without leading zeros"),
        (f"o\n١٢\n{ROOT_B64}\n", "without leading zeros"),
        (f"o\n{2**63}\n{ROOT_B64}\n", "tree size 9223372036854775808 is too large"),
        ("o\n12\nAAAA\n", "line 3 \\(root hash\\) must decode to 32 bytes, got 3"),
        ("o\n12\n" + ROOT_B64.rstrip("=") + "\n", "line 3 \\(root hash\\) is not (valid|canonical padded) base64"),
        ("o\n12\n" + ROOT_B64[:-2] + "9=\n", "line 3 \\(root hash\\) is not canonical padded base64"),
        ("o\n12\n" + base64.urlsafe_b64encode(b"\xff" * 32).decode() + "\n", "line 3 \\(root hash\\) is not valid base64"),
        (f"\n12\n{ROOT_B64}\n", "checkpoint line 1 is empty"),
        (f"o\n12\n{ROOT_B64}\n\ntally a b 1\n", "checkpoint line 4 is empty"),
        (f"o\n12\n{ROOT_B64}\ntally a b 1\n\n", "checkpoint line 5 is empty"),
    ],
)
def test_parsing_is_strict(text, message):
    with pytest.raises(FormatError, match=message):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"origin": ""}, "checkpoint origin must be a non-empty string"),
        ({"origin": "a\nb"}, "checkpoint origin must not contain U\\+000A"),
        ({"size": -1}, "checkpoint size must be an integer"),
        ({"size": True}, "checkpoint size must be an integer"),
        ({"root_hash": b"short"}, "root hash must be 32 bytes"),
        ({"extensions": ("",)}, "extension line 1 must be a non-empty string"),
        ({"extensions": ("ok", "two\nlines")}, "extension line 2 must not contain U\\+000A"),
        ({"extensions": "tally a b 1"}, "extensions must be a sequence of lines"),
    ],
)
def test_a_checkpoint_that_could_not_be_written_cannot_be_built(kwargs, message):
    args = {"origin": "o", "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(FormatError, match=message):
        Checkpoint(**args)


@pytest.mark.parametrize("algorithm", [ECDSA_P256, ED25519])
def test_sign_and_open_with_each_algorithm(algorithm):
    signer = SoftwareSigner.generate(algorithm)
    cp = Checkpoint(origin_for("vote.example.org", "demo"), 3, ROOT)
    note = sign_checkpoint(cp, NAME, signer)
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    assert open_checkpoint(note, [v]) == cp
    other = NoteVerifier.from_public_key("someone.else/key", SoftwareSigner.generate(algorithm).public_key_der)
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        open_checkpoint(note, [other])
