"""HPKE (RFC 9180) for sealed ballots: the official vectors, and agreement with cryptography's HPKE.

The vectors are tests/vectors/hpke-rfc9180 (a copy of the team's shared/vectors, provenance in
its PROVENANCE.md, checked against its SHA256SUMS): base mode,
DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM (printed in RFC 9180 A.3.1) and
AES-256-GCM (the suite the ballots use). Every one of their 257 encryptions is checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke as crypto_hpke
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_signer.errors import FormatError
from hsm_signer.log import hpke

VECTORS_DIR = Path(__file__).resolve().parent / "vectors" / "hpke-rfc9180"
VECTORS_FILE = VECTORS_DIR / "rfc9180-base-p256-sha256-aesgcm.json"


def _vectors() -> list[dict]:
    data = VECTORS_FILE.read_bytes()
    expected = {line.split()[1].lstrip("*"): line.split()[0]
                for line in (VECTORS_DIR / "SHA256SUMS").read_text().splitlines() if line.strip()}
    assert hashlib.sha256(data).hexdigest() == expected[VECTORS_FILE.name], "vector file differs from its SHA256SUMS"
    return json.loads(data)


VECTORS = _vectors()


def _key(hex_scalar: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(hex_scalar, 16), ec.SECP256R1())


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"aead-{v['aead_id']}")
def test_the_rfc9180_vectors_for_the_sealing_suite(vector):
    h = bytes.fromhex
    assert (vector["mode"], vector["kem_id"], vector["kdf_id"]) == (0, hpke.KEM_P256_HKDF_SHA256, hpke.KDF_HKDF_SHA256)
    ephemeral, recipient = _key(vector["skEm"]), _key(vector["skRm"])
    pk_r = h(vector["pkRm"])
    assert hpke.public_key_bytes(recipient.public_key()) == pk_r
    # Encap with the vector's ephemeral key, and Decap with the recipient's.
    shared_secret, enc = hpke.encapsulate(pk_r, ephemeral=ephemeral)
    assert (shared_secret, enc) == (h(vector["shared_secret"]), h(vector["enc"]))
    assert hpke.decapsulate(recipient, enc) == shared_secret
    # The HSM path: the raw DH output, then ExtractAndExpand outside the token.
    dh = recipient.exchange(ec.ECDH(), hpke.public_key_from_bytes(enc))
    assert hpke.shared_secret_from_dh(dh, enc, pk_r) == shared_secret
    context = hpke.key_schedule(shared_secret, h(vector["info"]), aead_id=vector["aead_id"])
    assert context.key == h(vector["key"])
    assert context.base_nonce == h(vector["base_nonce"])
    assert context.exporter_secret == h(vector["exporter_secret"])
    assert len(vector["encryptions"]) == 257
    for seq, item in enumerate(vector["encryptions"]):
        assert context.nonce(seq) == h(item["nonce"])
        ct = context.seal(h(item["pt"]), aad=h(item["aad"]), seq=seq)
        assert ct == h(item["ct"]), f"encryption {seq}"
        assert context.open(ct, aad=h(item["aad"]), seq=seq) == h(item["pt"])


def test_the_vectors_cover_both_aes_gcm_twins():
    assert sorted(v["aead_id"] for v in VECTORS) == [hpke.AEAD_AES_128_GCM, hpke.AEAD_AES_256_GCM]


SUITE = crypto_hpke.Suite(crypto_hpke.KEM.P256, crypto_hpke.KDF.HKDF_SHA256, crypto_hpke.AEAD.AES_256_GCM)


def test_what_this_module_seals_cryptography_opens_and_the_other_way_round():
    recipient = ec.generate_private_key(ec.SECP256R1())
    pk = hpke.public_key_bytes(recipient.public_key())
    info, message = b"ballot context", b'{"leader":["alice"]}' + bytes(20)
    ours = hpke.seal(pk, info, message)
    assert len(ours) == hpke.N_ENC + len(message) + hpke.N_TAG
    assert SUITE.decrypt(ours, recipient, info=info) == message
    theirs = SUITE.encrypt(message, recipient.public_key(), info=info)
    assert hpke.open_with_private_key(recipient, info, theirs) == message
    enc = theirs[:hpke.N_ENC]
    assert hpke.open_with_shared_secret(hpke.decapsulate(recipient, enc), info, theirs) == message


def test_a_sealed_message_does_not_open_with_another_info_secret_or_byte():
    recipient = ec.generate_private_key(ec.SECP256R1())
    pk = hpke.public_key_bytes(recipient.public_key())
    sealed = hpke.seal(pk, b"info-a", b"secret vote")
    secret = hpke.decapsulate(recipient, sealed[:hpke.N_ENC])
    assert hpke.open_with_shared_secret(secret, b"info-a", sealed) == b"secret vote"
    with pytest.raises(hpke.OpeningError, match="does not open with this secret"):
        hpke.open_with_shared_secret(secret, b"info-b", sealed)
    with pytest.raises(hpke.OpeningError):
        hpke.open_with_shared_secret(bytes([secret[0] ^ 1]) + secret[1:], b"info-a", sealed)
    flipped = bytearray(sealed)
    flipped[-1] ^= 0x01
    with pytest.raises(hpke.OpeningError):
        hpke.open_with_shared_secret(secret, b"info-a", bytes(flipped))


@pytest.mark.parametrize("bad, message", [
    (b"", "at least 81 bytes"),
    (b"\x04" + bytes(64) + bytes(16), "not a point on the P-256 curve"),
    (b"\x02" + bytes(80), "uncompressed P-256 point"),
])
def test_malformed_sealed_messages_are_format_errors(bad, message):
    with pytest.raises(FormatError, match=message):
        hpke.open_with_shared_secret(bytes(32), b"", bad)


def test_a_short_dh_output_is_refused_not_padded_silently():
    with pytest.raises(FormatError, match="32 bytes, got 31"):
        hpke.shared_secret_from_dh(bytes(31), b"\x04" + bytes(64), b"\x04" + bytes(64))
