"""HSM-held keys behind the narrow :class:`~hsm_signer.signer.Signer` / ``Mac`` interface.

An :class:`HsmSigner` names a key by label; the key handle is looked up through the
:class:`Token` (the :class:`~.token.Hsm`) on each call (cached per session), so a reconnection re-finds it.
The public key is read from the token once (public keys are not secret) and kept.

Encodings follow :mod:`hsm_signer.signer`: ECDSA signs SHA-256(message) on the host with
CKM_ECDSA in the HSM and returns DER; Ed25519 uses CKM_EDDSA over the message itself.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Protocol, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from ..errors import HsmError
from ..signer import ECDSA_P256, ED25519

T = TypeVar("T")


class Token(Protocol):
    """What a key needs of the token that holds it (:class:`~.token.Hsm` is the one there is)."""

    def run(self, what: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation(session)`` under the process's PKCS#11 lock, healing transient faults."""

    def find_key(self, session: Any, label: str, object_class: ObjectClass) -> Any:
        """The key object labelled ``label`` (cached per session)."""

    def require_mechanism(self, mechanism: Mechanism, purpose: str) -> None:
        """Raise if the token does not offer ``mechanism``, naming ``purpose``."""

_ED25519_OID_DER = bytes.fromhex("06032b6570")


def _unwrap_octet_string(value: bytes) -> bytes:
    """EC_POINT is a DER OCTET STRING on most tokens, raw bytes on a few."""
    if len(value) >= 2 and value[0] == 0x04 and value[1] == len(value) - 2 and len(value) - 2 in (32, 65):
        return value[2:]
    return value


def public_key_der(public_key_object: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a PKCS#11 EC or Edwards public key object."""
    key_type = public_key_object[Attribute.KEY_TYPE]
    point = _unwrap_octet_string(bytes(public_key_object[Attribute.EC_POINT]))
    key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
    if key_type == KeyType.EC_EDWARDS:
        key = ed25519.Ed25519PublicKey.from_public_bytes(point)
    elif key_type == KeyType.EC:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    else:
        raise HsmError(f"key {public_key_object[Attribute.LABEL]!r} is neither EC P-256 nor Ed25519")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def algorithm_of_key(key_object: Any) -> str:
    key_type = key_object[Attribute.KEY_TYPE]
    if key_type == KeyType.EC_EDWARDS:
        return ED25519
    if key_type == KeyType.EC:
        params = bytes(key_object[Attribute.EC_PARAMS])
        if params != bytes.fromhex("06082a8648ce3d030107"):  # prime256v1
            raise HsmError(f"EC key {key_object[Attribute.LABEL]!r} is not on curve P-256")
        return ECDSA_P256
    raise HsmError(f"key {key_object[Attribute.LABEL]!r} has unsupported key type {key_type!r}")


def _raw_to_der(raw: bytes) -> bytes:
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


class HsmSigner:
    """A signing key in the HSM, addressed by label."""

    def __init__(self, hsm: Token, label: str):
        self._hsm = hsm
        self._label = label
        self._algorithm, self._der = hsm.run(f"looking up key {label!r}", self._describe)
        mechanism = Mechanism.EDDSA if self._algorithm == ED25519 else Mechanism.ECDSA
        hsm.require_mechanism(mechanism, f"signing with key {label!r}")

    def _describe(self, session: Any) -> tuple[str, bytes]:
        private = self._hsm.find_key(session, self._label, ObjectClass.PRIVATE_KEY)
        public = self._hsm.find_key(session, self._label, ObjectClass.PUBLIC_KEY)
        return algorithm_of_key(private), public_key_der(public)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    @property
    def key_id(self) -> str:
        return self._label

    @property
    def public_key_der(self) -> bytes:
        return self._der

    def sign(self, message: bytes) -> bytes:
        if self._algorithm == ED25519:
            return self._hsm.run(f"signing with key {self._label!r}", lambda s: self._key(s).sign(
                message, mechanism=Mechanism.EDDSA))
        digest = hashlib.sha256(message).digest()
        raw = self._hsm.run(f"signing with key {self._label!r}", lambda s: self._key(s).sign(
            digest, mechanism=Mechanism.ECDSA))
        return _raw_to_der(raw)

    def _key(self, session: Any) -> Any:
        return self._hsm.find_key(session, self._label, ObjectClass.PRIVATE_KEY)


class HsmMac:
    """An HMAC-SHA256 secret key in the HSM, addressed by label."""

    def __init__(self, hsm: Token, label: str):
        self._hsm = hsm
        self._label = label
        hsm.require_mechanism(Mechanism.SHA256_HMAC, f"HMAC with key {label!r}")
        hsm.run(f"looking up key {label!r}", self._key)

    @property
    def key_id(self) -> str:
        return self._label

    def _key(self, session: Any) -> Any:
        return self._hsm.find_key(session, self._label, ObjectClass.SECRET_KEY)

    def mac(self, data: bytes) -> bytes:
        return self._hsm.run(f"HMAC with key {self._label!r}",
                             lambda s: self._key(s).sign(data, mechanism=Mechanism.SHA256_HMAC))

    def mac_many(self, items: list[bytes]) -> list[bytes]:
        """HMAC of each item, in one trip through the lock (for issuing many codes)."""
        def run(session: Any) -> list[bytes]:
            key = self._key(session)
            return [key.sign(item, mechanism=Mechanism.SHA256_HMAC) for item in items]
        return self._hsm.run(f"HMAC with key {self._label!r}", run)
