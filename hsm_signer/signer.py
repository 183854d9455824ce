"""The narrow signing interface that sits above PKCS#11.

Everything above the HSM (checkpoints, tallies, the ceremony's proof of possession,
voting-code hashing) talks to a :class:`Signer` or a :class:`Mac`, never to PKCS#11.
The software implementations here let higher layers be unit-tested without an HSM; they
must never be used to sign anything published by an election (the service only builds
signers from :mod:`hsm_signer.hsm`).

Signature encoding is fixed here once for the whole project:
ECDSA P-256 signs SHA-256(message) and returns an ASN.1 DER ``ECDSA-Sig-Value``;
Ed25519 signs the message itself (PureEdDSA) and returns the 64-byte signature.
"""

from __future__ import annotations

import functools
import hashlib
import hmac as _hmac
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .errors import VerificationError

ECDSA_P256 = "ecdsa-p256"
ED25519 = "ed25519"
ALGORITHMS = (ECDSA_P256, ED25519)


@runtime_checkable
class Signer(Protocol):
    """A private key that can sign, whatever holds it."""

    @property
    def algorithm(self) -> str:
        """``"ecdsa-p256"`` or ``"ed25519"``."""

    @property
    def key_id(self) -> str:
        """A stable name for the key (the HSM label, for HSM keys)."""

    @property
    def public_key_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo of the public half."""

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (see the module docstring for the encoding)."""


@runtime_checkable
class Mac(Protocol):
    """A secret key that computes HMAC-SHA256, whatever holds it."""

    @property
    def key_id(self) -> str: ...

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256(key, data), 32 bytes."""


def load_public_key(der: bytes) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """Parse a DER SubjectPublicKeyInfo, accepting only P-256 and Ed25519 keys."""
    return _load_public_key(bytes(der))


@functools.lru_cache(maxsize=64)  # an audit checks many signatures by the same few keys
def _load_public_key(der: bytes) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationError(f"public key is not a valid DER SubjectPublicKeyInfo: {exc}", "key.invalid") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise VerificationError("public key is neither ECDSA P-256 nor Ed25519", "key.invalid")


def algorithm_of(der: bytes) -> str:
    """The algorithm name of a DER SubjectPublicKeyInfo."""
    return ED25519 if isinstance(load_public_key(der), ed25519.Ed25519PublicKey) else ECDSA_P256


def verify_signature(public_key_der: bytes, message: bytes, signature: bytes) -> None:
    """Check ``signature`` over ``message``; raise :class:`VerificationError` if it is bad."""
    key = load_public_key(public_key_der)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("signature does not verify with the given public key", "signature.invalid") from None


def pem_of(der: bytes) -> str:
    """The PEM text of a DER SubjectPublicKeyInfo."""
    key = load_public_key(der)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint of a public key, as lowercase hex."""
    return hashlib.sha256(der).hexdigest()


class SoftwareSigner:
    """A :class:`Signer` over a key held in memory. For tests and offline tools only."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, key_id: str = "software"):
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            self._algorithm = ED25519
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1):
            self._algorithm = ECDSA_P256
        else:
            raise ValueError("SoftwareSigner takes an ECDSA P-256 or Ed25519 private key")
        self._key = private_key
        self._key_id = key_id
        self._der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls, algorithm: str = ECDSA_P256, key_id: str = "software") -> "SoftwareSigner":
        if algorithm == ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate(), key_id)
        if algorithm == ECDSA_P256:
            return cls(ec.generate_private_key(ec.SECP256R1()), key_id)
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key_der(self) -> bytes:
        return self._der

    def sign(self, message: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(message)
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


class SoftwareMac:
    """A :class:`Mac` over a secret held in memory. For tests only."""

    def __init__(self, secret: bytes, key_id: str = "software-mac"):
        self._secret = secret
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def mac(self, data: bytes) -> bytes:
        return _hmac.new(self._secret, data, hashlib.sha256).digest()
