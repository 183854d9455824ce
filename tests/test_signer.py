"""The narrow signing interface: encodings and the verifier that raises, never returns False."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from hsm_signer.errors import VerificationError
from hsm_signer.signer import ECDSA_P256, ED25519, SoftwareSigner, algorithm_of, load_public_key, verify_signature


@pytest.mark.parametrize("algorithm", [ECDSA_P256, ED25519])
def test_a_signature_verifies_and_any_change_is_refused(algorithm):
    signer = SoftwareSigner.generate(algorithm)
    signature = signer.sign(b"note text\n")
    assert algorithm_of(signer.public_key_der) == algorithm
    verify_signature(signer.public_key_der, b"note text\n", signature)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(signer.public_key_der, b"note text!\n", signature)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(SoftwareSigner.generate(algorithm).public_key_der, b"note text\n", signature)


def test_ecdsa_signatures_are_der_encoded():
    r, s = decode_dss_signature(SoftwareSigner.generate(ECDSA_P256).sign(b"x"))
    assert r > 0 and s > 0


@pytest.mark.parametrize("der, message", [
    (b"not a key", "not a valid DER SubjectPublicKeyInfo"),
    (base64.b64decode("MAswBQYDKgMEAwIAAQ=="), "Unknown key type: 1.2.3.4"),  # SPKI with OID 1.2.3.4
])
def test_unusable_public_keys_are_verification_errors(der, message):
    with pytest.raises(VerificationError, match=message):
        load_public_key(der)
    with pytest.raises(VerificationError, match=message):
        load_public_key(bytearray(der))  # any bytes-like input, despite the cache
