"""HPKE (RFC 9180) base mode for the one suite sealed ballots use: pure, no I/O, no PKCS#11.

Suite: DHKEM(P-256, HKDF-SHA256) (KEM 0x0010), HKDF-SHA256 (KDF 0x0001), AES-256-GCM
(AEAD 0x0002). AES-128-GCM (0x0001) is here only because the official RFC 9180 vectors
print that twin; nothing seals with it.

Why this module exists beside ``cryptography.hazmat.primitives.hpke``: the opening side
never holds the private key. The HSM does the one Diffie-Hellman step (``CKM_ECDH1_DERIVE``
with a derive-only, non-extractable key) and everything after it, the KEM's
``ExtractAndExpand`` and the key schedule, runs here. The published opening of a ballot is
its KEM ``shared_secret``: with it anyone can re-run :func:`open_with_shared_secret` and so
check the count without trusting the tally. Sealing is also done here, so that tests can
fix the ephemeral key and reproduce the RFC's vectors; the test suite checks that it agrees
with cryptography's HPKE both ways.

This module must never log or return a private key, and it must never accept a ciphertext
whose tag does not verify (:class:`OpeningError`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import FormatError, VerificationError

KEM_P256_HKDF_SHA256 = 0x0010
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_128_GCM = 0x0001
AEAD_AES_256_GCM = 0x0002
MODE_BASE = 0x00

#: Bytes of an encapsulated key: an uncompressed SEC1 P-256 point (0x04 || x || y).
N_ENC = 65
#: Bytes of the KEM's shared secret and of HKDF-SHA256's output (Nsecret, Nh).
N_SECRET = 32
N_NONCE = 12
N_TAG = 16
_KEY_BYTES = {AEAD_AES_128_GCM: 16, AEAD_AES_256_GCM: 32}
_VERSION_LABEL = b"HPKE-v1"
_KEM_SUITE_ID = b"KEM" + KEM_P256_HKDF_SHA256.to_bytes(2, "big")


class OpeningError(VerificationError):
    """The ciphertext does not open with this secret (wrong secret, or altered bytes)."""


def _hpke_suite_id(aead_id: int) -> bytes:
    return b"HPKE" + b"".join(n.to_bytes(2, "big") for n in (KEM_P256_HKDF_SHA256, KDF_HKDF_SHA256, aead_id))


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.digest(salt, ikm, hashlib.sha256)


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hashlib.sha256)
        out += block
        counter += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 §4: ``HKDF-Extract(salt, "HPKE-v1" || suite_id || label || ikm)``."""
    return _extract(salt, _VERSION_LABEL + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 §4: ``HKDF-Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)``."""
    return _expand(prk, length.to_bytes(2, "big") + _VERSION_LABEL + suite_id + label + info, length)


@lru_cache(maxsize=4)
def _recipient(public_key: bytes) -> ec.EllipticCurvePublicKey:
    """The recipient's key, checked once: a server seals every ballot to the same one."""
    return public_key_from_bytes(public_key)


@lru_cache(maxsize=4)
def _psk_id_hash(suite_id: bytes) -> bytes:
    return labeled_extract(suite_id, b"", b"psk_id_hash", b"")  # base mode: the same for every message


def public_key_from_bytes(data: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its uncompressed SEC1 encoding; FormatError if it is not one."""
    if not isinstance(data, (bytes, bytearray)) or len(data) != N_ENC or data[0] != 0x04:
        raise FormatError(f"expected an uncompressed P-256 point ({N_ENC} bytes starting 0x04)")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(data))
    except ValueError:
        raise FormatError("the bytes are not a point on the P-256 curve") from None


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def shared_secret_from_dh(dh: bytes, enc: bytes, public_key: bytes) -> bytes:
    """DHKEM's ``ExtractAndExpand(dh, enc || pkR)``: the KEM shared secret from the raw DH output.

    ``dh`` is the x-coordinate of ``skR · E`` (32 bytes; a token that strips leading zero
    bytes must have its output left-padded before it gets here).
    """
    if len(dh) != N_SECRET:
        raise FormatError(f"a P-256 Diffie-Hellman output is {N_SECRET} bytes, got {len(dh)}")
    eae_prk = labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", bytes(enc) + bytes(public_key), N_SECRET)


@dataclass(frozen=True)
class Context:
    """The key schedule's output (RFC 9180 §5.1): what one sealed message is opened with."""

    aead_id: int
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes

    def nonce(self, seq: int) -> bytes:
        return (int.from_bytes(self.base_nonce, "big") ^ seq).to_bytes(N_NONCE, "big")

    def seal(self, plaintext: bytes, *, aad: bytes = b"", seq: int = 0) -> bytes:
        return AESGCM(self.key).encrypt(self.nonce(seq), plaintext, aad)

    def open(self, ciphertext: bytes, *, aad: bytes = b"", seq: int = 0) -> bytes:
        try:
            return AESGCM(self.key).decrypt(self.nonce(seq), ciphertext, aad)
        except InvalidTag:
            raise OpeningError("the sealed ballot does not open with this secret "
                               "(the secret is wrong, or the ciphertext or its context was altered)") from None


def key_schedule(shared_secret: bytes, info: bytes, *, aead_id: int = AEAD_AES_256_GCM) -> Context:
    """RFC 9180 §5.1 ``KeySchedule`` in base mode (no PSK)."""
    if aead_id not in _KEY_BYTES:
        raise FormatError(f"unsupported AEAD id 0x{aead_id:04x}")
    suite_id = _hpke_suite_id(aead_id)
    psk_id_hash = _psk_id_hash(suite_id)
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    return Context(aead_id=aead_id,
                   key=labeled_expand(suite_id, secret, b"key", context, _KEY_BYTES[aead_id]),
                   base_nonce=labeled_expand(suite_id, secret, b"base_nonce", context, N_NONCE),
                   exporter_secret=labeled_expand(suite_id, secret, b"exp", context, N_SECRET))


def encapsulate(public_key: bytes, *, ephemeral: ec.EllipticCurvePrivateKey | None = None) -> tuple[bytes, bytes]:
    """DHKEM ``Encap(pkR)``: ``(shared_secret, enc)``. ``ephemeral`` is for test vectors only."""
    recipient = _recipient(bytes(public_key))
    ephemeral = ephemeral or ec.generate_private_key(ec.SECP256R1())
    enc = public_key_bytes(ephemeral.public_key())
    dh = ephemeral.exchange(ec.ECDH(), recipient)
    return shared_secret_from_dh(dh, enc, bytes(public_key)), enc


def seal(public_key: bytes, info: bytes, plaintext: bytes, *, aead_id: int = AEAD_AES_256_GCM,
         ephemeral: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """Single-shot base-mode seal: ``enc || ct`` (the layout cryptography's HPKE returns)."""
    shared_secret, enc = encapsulate(public_key, ephemeral=ephemeral)
    return enc + key_schedule(shared_secret, info, aead_id=aead_id).seal(plaintext)


def split_sealed(sealed: bytes) -> tuple[bytes, bytes]:
    """``(enc, ct)``: FormatError unless ``enc`` is a P-256 point and a tag follows it."""
    if not isinstance(sealed, (bytes, bytearray)) or len(sealed) < N_ENC + N_TAG:
        raise FormatError(f"a sealed message is at least {N_ENC + N_TAG} bytes (enc || ciphertext || tag)")
    enc = bytes(sealed[:N_ENC])
    public_key_from_bytes(enc)
    return enc, bytes(sealed[N_ENC:])


def open_with_shared_secret(shared_secret: bytes, info: bytes, sealed: bytes, *,
                            aead_id: int = AEAD_AES_256_GCM) -> bytes:
    """Open ``enc || ct`` with its published KEM shared secret (what auditors re-run)."""
    if len(shared_secret) != N_SECRET:
        raise FormatError(f"a shared secret is {N_SECRET} bytes, got {len(shared_secret)}")
    _enc, ct = split_sealed(sealed)
    return key_schedule(shared_secret, info, aead_id=aead_id).open(ct)


def decapsulate(private_key: ec.EllipticCurvePrivateKey, enc: bytes) -> bytes:
    """DHKEM ``Decap`` with a software key (rehearsals and tests; the HSM does this in production)."""
    dh = private_key.exchange(ec.ECDH(), public_key_from_bytes(enc))
    return shared_secret_from_dh(dh, enc, public_key_bytes(private_key.public_key()))


def open_with_private_key(private_key: ec.EllipticCurvePrivateKey, info: bytes, sealed: bytes, *,
                          aead_id: int = AEAD_AES_256_GCM) -> bytes:
    enc, _ct = split_sealed(sealed)
    return open_with_shared_secret(decapsulate(private_key, enc), info, sealed, aead_id=aead_id)
