"""Signed notes (c2sp.org/signed-note): interoperable vectors, our keys, and strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from hsm_signer.errors import FormatError, VerificationError
from hsm_signer.log.note import (
    NoteVerifier,
    key_id,
    open_note,
    parse_note,
    sign_note,
    verifier_key,
)
from hsm_signer.signer import ECDSA_P256, ED25519, SoftwareSigner, fingerprint

VECTORS = Path(__file__).parent / "vectors" / "signed-note"
GO = json.loads((VECTORS / "go-sumdb-note.json").read_text())
REKOR = json.loads((VECTORS / "transparency-dev-formats-ecdsa.json").read_text())
TEXT = "hsm-signer/demo\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
NAME = "hsm-signer.example/checkpoint"


def peter_signer() -> SoftwareSigner:
    seed = base64.b64decode(GO["signer_key"].split("+", 4)[4])
    assert seed[0] == 0x01
    return SoftwareSigner(ed25519.Ed25519PrivateKey.from_private_bytes(seed[1:]))


# --- interoperability with published notes -----------------------------------------------

def test_go_ed25519_verifier_key_parses_and_round_trips():
    v = NoteVerifier.from_string(GO["verifier_key"])
    assert (v.name, v.key_id.hex(), v.algorithm) == ("PeterNeumann", "c74f20a3", ED25519)
    assert v.to_string() == GO["verifier_key"]


def test_signing_the_go_text_with_the_go_key_reproduces_the_published_note_byte_for_byte():
    assert sign_note(GO["text"], "PeterNeumann", peter_signer()) == GO["note"]
    assert verifier_key("PeterNeumann", peter_signer().public_key_der) == GO["verifier_key"]


def test_go_note_opens_and_a_second_untrusted_signature_is_ignored():
    peter = NoteVerifier.from_string(GO["verifier_key"])
    enoch = NoteVerifier.from_string(GO["second_verifier_key"])
    two = GO["note"] + GO["second_signature_line"]
    assert open_note(GO["note"], [peter]) == (GO["text"], ["PeterNeumann"])
    assert open_note(two, [peter]) == (GO["text"], ["PeterNeumann"])
    assert open_note(two, [peter, enoch]) == (GO["text"], ["PeterNeumann", "EnochRoot"])
    with pytest.raises(VerificationError, match="no signature by a trusted key .*signed by: PeterNeumann \\(c74f20a3\\), EnochRoot"):
        open_note(two, [])


@pytest.mark.parametrize("case", sorted(GO["malformed_notes"]))
def test_go_malformed_notes_are_rejected(case):
    with pytest.raises(FormatError):
        open_note(GO["malformed_notes"][case], [NoteVerifier.from_string(GO["verifier_key"])])


def test_go_note_with_invalid_utf8_is_rejected():
    data = bytes.fromhex(GO["invalid_utf8_note_hex_prefix"]) + GO["note"].encode()
    with pytest.raises(FormatError, match="note is not valid UTF-8 \\(byte 0\\)"):
        open_note(data, [NoteVerifier.from_string(GO["verifier_key"])])


@pytest.mark.parametrize("vkey", [*GO["bad_verifier_keys"].values(), *REKOR["bad_verifier_keys"].values()])
def test_published_bad_verifier_keys_are_rejected(vkey):
    with pytest.raises(FormatError):
        NoteVerifier.from_string(vkey)


def test_every_mangling_of_a_verifier_key_is_rejected():
    vkey = GO["verifier_key"]
    for i in range(len(vkey) + 1):
        for j in range(i + 1, len(vkey) + 1):
            if (i, j) != (0, len(vkey)):
                with pytest.raises(FormatError):
                    NoteVerifier.from_string(vkey[i:j])
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1:]
        with pytest.raises(FormatError):
            NoteVerifier.from_string(mangled)


def test_rekor_ecdsa_checkpoint_verifies_with_type_0x02():
    v = NoteVerifier.from_string(REKOR["verifier_key"])
    assert (v.name, v.key_id.hex(), v.algorithm) == ("rekor.sigstore.dev", "c0d23d6a", ECDSA_P256)
    # type 0x02: the key ID is the truncated SHA-256 of the DER SPKI (the key name is not hashed)
    assert hashlib.sha256(v.public_key_der).digest()[:4] == v.key_id
    text, names = open_note(REKOR["note"], [v])
    assert text.startswith("Rekor\n798034\n") and names == ["rekor.sigstore.dev"]
    with pytest.raises(VerificationError):
        open_note(REKOR["bad_notes"]["invalid signature"], [v])


# --- our own keys -------------------------------------------------------------------------

@pytest.fixture(params=[ECDSA_P256, ED25519])
def signer(request):
    return SoftwareSigner.generate(request.param)


def test_sign_and_open_round_trip(signer):
    note = sign_note(TEXT, NAME, signer)
    assert note.startswith(TEXT + "\n\u2014 " + NAME + " ")
    v = NoteVerifier.from_string(verifier_key(NAME, signer.public_key_der))
    assert open_note(note, [v]) == (TEXT, [NAME])
    assert open_note(note.encode("utf-8"), [v]) == (TEXT, [NAME])


def test_key_ids_follow_the_spec_for_each_type():
    ec = SoftwareSigner.generate(ECDSA_P256)
    assert key_id(NAME, ec.public_key_der).hex() == fingerprint(ec.public_key_der)[:8]
    ed = NoteVerifier.from_public_key(NAME, SoftwareSigner.generate(ED25519).public_key_der)
    raw = base64.b64decode(ed.to_string().split("+", 2)[2])
    assert raw[0] == 0x01 and len(raw) == 33
    assert ed.key_id == hashlib.sha256(NAME.encode() + b"\n" + raw).digest()[:4]


def test_verifier_keys_carry_raw_ed25519_bytes_and_der_spki_for_ecdsa():
    ec = SoftwareSigner.generate(ECDSA_P256)
    raw = base64.b64decode(verifier_key(NAME, ec.public_key_der).split("+", 2)[2])
    assert raw == b"\x02" + ec.public_key_der


def test_a_tampered_text_fails_verification(signer):
    note = sign_note(TEXT, NAME, signer)
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    with pytest.raises(VerificationError, match=f"signature by {NAME} \\(key ID [0-9a-f]{{8}}\\) does not verify"):
        open_note(note.replace("\n3\n", "\n4\n"), [v])


def test_a_note_signed_only_by_another_key_under_the_trusted_name_is_rejected(signer):
    note = sign_note(TEXT, NAME, SoftwareSigner.generate(signer.algorithm))
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    with pytest.raises(VerificationError, match=f"no signature by a trusted key \\(trusted: {NAME} \\({v.key_id.hex()}\\)"):
        open_note(note, [v])


def test_during_a_key_rotation_a_note_signed_by_the_old_and_new_keys_verifies_for_either(signer):
    """c2sp.org/signed-note: verifiers MUST ignore signatures from unknown keys, even under a known name."""
    old = SoftwareSigner.generate(signer.algorithm)
    by_old = sign_note(TEXT, NAME, old)
    both = by_old + sign_note(TEXT, NAME, signer).split("\n\n")[1]
    new_v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    old_v = NoteVerifier.from_public_key(NAME, old.public_key_der)
    assert open_note(both, [new_v]) == (TEXT, [NAME])
    assert open_note(both, [old_v]) == (TEXT, [NAME])
    assert open_note(both, [old_v, new_v]) == (TEXT, [NAME, NAME])
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        open_note(by_old, [new_v])


def test_a_bad_signature_by_a_trusted_key_rejects_the_note_even_beside_a_good_one(signer):
    good = sign_note(TEXT, NAME, signer)
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    line = good.split("\n\n")[1]
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[-1] ^= 1
    forged = f"\u2014 {NAME} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(good.split("\n\n")[0] + "\n\n" + forged + line, [v])


def test_identical_signature_lines_count_once(signer):
    note = sign_note(TEXT, NAME, signer)
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    doubled = note + note.split("\n\n")[1]
    assert parse_note(doubled) == parse_note(note)
    assert open_note(doubled, [v]) == (TEXT, [NAME])


def test_two_different_signatures_by_one_trusted_key_are_rejected():
    ecdsa = SoftwareSigner.generate(ECDSA_P256)  # a fresh nonce: a second, different, valid signature
    first, second = sign_note(TEXT, NAME, ecdsa), sign_note(TEXT, NAME, ecdsa)
    assert first != second
    v = NoteVerifier.from_public_key(NAME, ecdsa.public_key_der)
    with pytest.raises(FormatError, match=f"two different signatures by {NAME}"):
        open_note(first + second.split("\n\n")[1], [v])
    # by a key nobody trusts, they are ignored like any other unknown signature
    stranger = NoteVerifier.from_public_key("someone.else/key", SoftwareSigner.generate(ECDSA_P256).public_key_der)
    extra = sign_note(TEXT, NAME, SoftwareSigner.generate(ECDSA_P256)).split("\n\n")[1]
    assert open_note(first + extra, [v, stranger]) == (TEXT, [NAME])


def test_a_note_signed_only_by_unknown_names_is_rejected(signer):
    note = sign_note(TEXT, "someone.else/key", signer)
    v = NoteVerifier.from_public_key(NAME, signer.public_key_der)
    with pytest.raises(VerificationError, match=f"no signature by a trusted key \\(trusted: {NAME} \\([0-9a-f]{{8}}\\); signed by: someone.else/key \\("):
        open_note(note, [v])


# --- strict syntax -------------------------------------------------------------------------

SIGNED = sign_note(TEXT, NAME, SoftwareSigner.generate(ED25519))
SIG_LINE = SIGNED.split("\n\n")[1]
SIG_B64 = SIG_LINE.split(" ")[2].rstrip("\n")


@pytest.mark.parametrize(
    "note, message",
    [
        (SIGNED[:-1], "note must end with a newline"),
        (TEXT, "no blank line separating the text from the signatures"),
        (TEXT + "\n", "no signature lines after the blank line"),
        (SIGNED.replace("\n3\n", "\n3\r\n"), "control character U\\+000D on line 2"),
        (SIGNED.replace("hsm-signer/demo", "hsm-signer/\tdemo"), "control character U\\+0009 on line 1"),
        (SIGNED.replace("\u2014 ", "- "), "signature line 1 must start with an em dash"),
        (SIGNED.replace(f"{NAME} ", f"{NAME}  "), "must be '— <key name> <base64 signature>' with single spaces"),
        (SIGNED.replace(NAME, "a+b"), "signature line 1: key name 'a\\+b' must not contain"),
        (SIGNED.replace(SIG_B64, SIG_B64[:-4] + "!!!!"), "signature line 1 .* signature is not valid base64"),
        (SIGNED.replace(SIG_B64, SIG_B64.rstrip("=")), "signature is not (valid|canonical padded) base64"),
        (SIGNED.replace(SIG_B64, "AAAAAA=="), "signature is too short: 4 bytes"),
        (TEXT + "\n" + SIG_LINE * 101, "101 signature lines; at most 100"),
        (SIGNED + "trailing text\n", "signature line 2 must start with an em dash"),
    ],
)
def test_malformed_notes_are_rejected_with_a_precise_message(note, message):
    with pytest.raises(FormatError, match=message):
        parse_note(note)


def test_signing_refuses_text_without_final_newline_or_with_control_characters(signer):
    with pytest.raises(FormatError, match="note text must end with a newline"):
        sign_note("no newline", NAME, signer)
    with pytest.raises(FormatError, match="control character U\\+0000"):
        sign_note("a\x00b\n", NAME, signer)
    with pytest.raises(FormatError, match="must not contain spaces"):
        sign_note(TEXT, "two words", signer)


def test_a_signer_that_returns_a_bad_signature_is_caught_before_the_note_leaves(signer):
    class Broken:
        algorithm, key_id, public_key_der = signer.algorithm, "broken", signer.public_key_der

        def sign(self, message):
            return signer.sign(message + b"x")

    with pytest.raises(VerificationError, match="does not verify"):
        sign_note(TEXT, NAME, Broken())


@pytest.mark.parametrize(
    "vkey, message",
    [
        ("name+c74f20a3", "must have the form"),
        ("na me+c74f20a3+ARpc", "must not contain spaces"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex digits"),
        ("PeterNeumann+c74f20a3+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "unsupported signature type 0x04"),
        ("PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key ID 00000000 does not match its key \\(expected c74f20a3\\)"),
        ("x+00000000+AjBZ", "not valid base64|ECDSA verifier key"),
    ],
)
def test_malformed_verifier_keys_say_what_is_wrong(vkey, message):
    with pytest.raises(FormatError, match=message):
        NoteVerifier.from_string(vkey)
