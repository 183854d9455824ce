"""The HSM layer against a real SoftHSM2 token, checked with cryptography, hmac and PyKCS11."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from conftest import TEST_HMAC_SECRET
from harness import pykcs11
from hsm_signer.errors import (
    HsmConfigError, KeyNotFoundError, MechanismNotSupportedError, VerificationError,
)
from hsm_signer.hsm import FixedPin, Hsm
from hsm_signer.hsm.manage import generate_signing_key, key_attributes
from hsm_signer.signer import ECDSA_P256, ED25519, verify_signature

pytestmark = pytest.mark.hsm


def test_ecdsa_signature_made_in_the_hsm_verifies_with_cryptography(hsm):
    signer = hsm.signer("test-ecdsa")
    assert signer.algorithm == ECDSA_P256
    message = b"checkpoint text\n"
    signature = signer.sign(message)
    decode_dss_signature(signature)  # DER, not raw r||s
    verify_signature(signer.public_key_der, message, signature)
    with pytest.raises(VerificationError):
        verify_signature(signer.public_key_der, message + b"x", signature)


def test_ed25519_signature_made_in_the_hsm_verifies_with_cryptography(hsm):
    signer = hsm.signer("test-ed25519")
    assert signer.algorithm == ED25519
    signature = signer.sign(b"hello")
    assert len(signature) == 64
    verify_signature(signer.public_key_der, b"hello", signature)


def test_hmac_in_the_hsm_matches_the_standard_library(hsm):
    mac = hsm.mac("test-hmac-known")
    for data in (b"", b"ABCD-EFGH-JKLM", os.urandom(100)):
        assert mac.mac(data) == hmac.new(TEST_HMAC_SECRET, data, hashlib.sha256).digest()
    items = [os.urandom(12) for _ in range(50)]
    assert mac.mac_many(items) == [hmac.new(TEST_HMAC_SECRET, i, hashlib.sha256).digest() for i in items]


def test_public_key_read_from_the_hsm_matches_what_pykcs11_sees(hsm, token):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    seen = {(o["class"], o["label"]): o for o in pykcs11(token, "objects")}
    point = bytes.fromhex(seen[("public_key", "test-ecdsa")]["ec_point"])[2:]  # DER OCTET STRING
    expected = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hsm.signer("test-ecdsa").public_key_der == expected


def test_generated_keys_are_sensitive_local_token_objects_per_pykcs11(hsm, token, random_label):
    generate_signing_key(hsm, random_label, b"\x33", ECDSA_P256)
    ours = key_attributes(hsm, random_label)
    assert ours["sensitive"] and ours["never_extractable"] and ours["local"] and ours["token"]
    assert ours["extractable"] is False
    seen = {(o["class"], o["label"]): o for o in pykcs11(token, "objects")}
    private = seen[("private_key", random_label)]
    assert {k: private[k] for k in ("token", "private", "sensitive", "extractable", "local",
                                    "always_sensitive", "never_extractable")} == {
        "token": True, "private": True, "sensitive": True, "extractable": False, "local": True,
        "always_sensitive": True, "never_extractable": True}
    assert pykcs11(token, "read-value", random_label) == {"error": "CKR_ATTRIBUTE_SENSITIVE"}
    assert "error" in pykcs11(token, "wrap", random_label)


def test_eight_threads_signing_concurrently_produce_only_valid_signatures(hsm):
    signer = hsm.signer("test-ecdsa")
    failures: list[str] = []
    counts = [0] * 8

    def work(n: int) -> None:
        for i in range(1000):
            message = f"thread {n} message {i}".encode()
            try:
                verify_signature(signer.public_key_der, message, signer.sign(message))
                counts[n] += 1
            except Exception as exc:  # collected, asserted below
                failures.append(f"{n}/{i}: {exc!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert counts == [1000] * 8


# --- configuration mistakes: one clear line naming the problem and the fix ----------

def test_wrong_module_path_names_the_path_and_the_setting(token):
    with pytest.raises(HsmConfigError, match=r"cannot load PKCS#11 module '/nonexistent/libhsm.so'.*set hsm.module"):
        Hsm("/nonexistent/libhsm.so", token_label=token.label, pin_source=FixedPin("x")).open()


def test_unknown_token_label_lists_the_tokens_present(token):
    with pytest.raises(HsmConfigError, match=r"no token 'no-such-token' .*tokens present: .*" + token.label):
        Hsm(token.module, token_label="no-such-token", pin_source=FixedPin("x")).open()


def test_wrong_pin_is_reported_without_the_pin(tokens):
    fresh = tokens.new("pin")
    with pytest.raises(HsmConfigError, match=r"wrong PIN for HSM token .*check the PIN source") as caught:
        Hsm(fresh.module, token_label=fresh.label, pin_source=FixedPin("not-the-pin-9876")).open()
    assert "not-the-pin-9876" not in str(caught.value)


def test_missing_key_label_names_label_and_token(hsm, token):
    with pytest.raises(KeyNotFoundError, match=rf"no private key labelled 'absent' on HSM token '{token.label}'"):
        hsm.signer("absent")


def test_duplicate_key_labels_are_refused(tokens):
    fresh = tokens.new("dup")
    with Hsm(fresh.module, token_label=fresh.label, pin_source=FixedPin(fresh.user_pin)) as h:
        generate_signing_key(h, "twin", b"\x01", ECDSA_P256)
        pykcs11(fresh, "duplicate-ec", "twin")  # a second key, made behind our back
        h.forget_key_handles()
        with pytest.raises(KeyNotFoundError, match=r"2 private keys labelled 'twin'.*labels must be unique"):
            h.signer("twin")
        with pytest.raises(HsmConfigError, match=r"already exists"):
            generate_signing_key(h, "twin", b"\x02", ECDSA_P256)


def test_mechanism_missing_from_the_token_is_named(hsm):
    from pkcs11 import Mechanism

    with pytest.raises(MechanismNotSupportedError, match=r"does not offer GOSTR3410.*needed for testing"):
        hsm.require_mechanism(Mechanism.GOSTR3410, "testing")


def test_health_reports_token_keys_and_no_error(hsm, token):
    report = hsm.health()
    assert report["status"] == "ok"
    assert report["token"] == token.label
    assert {"test-ecdsa", "test-ed25519", "test-hmac-known"} <= set(report["keys"])
    assert "last_error" in report


def test_a_module_reinitialised_behind_a_live_token_heals_without_an_error(hsm, tokens):
    signer = hsm.signer("test-ecdsa")
    # Opening a token created after start makes the module rescan (C_Finalize +
    # C_Initialize), which kills every session of the process, ours included.
    fresh = tokens.new("rescan")
    Hsm(fresh.module, token_label=fresh.label, pin_source=FixedPin(fresh.user_pin)).open().close()
    verify_signature(signer.public_key_der, b"after", signer.sign(b"after"))
    assert hsm.available


# --- a network HSM that goes away and comes back ----------------------------------

def test_network_hsm_outage_fails_fast_and_recovers_without_restart(network_hsm):
    import time

    from hsm_signer.errors import HsmUnavailableError

    server, h = network_hsm
    signer = h.signer("net-ecdsa")
    verify_signature(signer.public_key_der, b"before", signer.sign(b"before"))

    server.stop()
    started = time.monotonic()
    with pytest.raises(HsmUnavailableError, match="HSM unavailable"):
        signer.sign(b"during")
    assert time.monotonic() - started < 3
    # While it stays down, calls fail at once rather than retrying each time.
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(HsmUnavailableError):
            signer.sign(b"during")
    assert time.monotonic() - started < 3
    assert h.health()["status"] == "unavailable"
    assert h.health()["last_error"]

    server.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            signature = signer.sign(b"after")
            break
        except HsmUnavailableError:
            assert time.monotonic() < deadline, "the HSM layer did not recover within 10 s"
            time.sleep(0.2)
    verify_signature(signer.public_key_der, b"after", signature)
    assert h.health()["status"] == "ok"


def test_opening_a_token_while_the_network_hsm_is_down_says_so(network_hsm, network_token, p11kit_client_module):
    from hsm_signer.errors import HsmUnavailableError

    server, _ = network_hsm
    server.stop()
    with pytest.raises(HsmUnavailableError, match=r"HSM unavailable: cannot open token .* check that the HSM is up and reachable"):
        Hsm(p11kit_client_module, token_label=network_token.label, pin_source=FixedPin(network_token.user_pin)).open()


def test_an_all_zero_serial_is_refused_with_advice_to_choose_by_label(token):
    """tpm2-pkcs11 and openCryptoki report serials such as 0000000000000000."""
    with pytest.raises(HsmConfigError, match=r"does not identify a token .*hsm.token_label"):
        Hsm(token.module, token_serial="0000000000000000", pin_source=FixedPin("x"))
