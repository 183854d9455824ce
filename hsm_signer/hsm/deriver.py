"""The sealing key in the HSM behind a narrow interface: its public key and ECDH ``derive``.

A :class:`HsmDeriver` names a derive-only EC P-256 private key by label. ``derive(enc)``
runs ``CKM_ECDH1_DERIVE`` with ``CKD_NULL`` on the peer point ``enc`` (the HPKE
encapsulated key, uncompressed SEC1) and returns the raw shared secret: the
x-coordinate of ``sk * enc``, always 32 bytes (left-padded with zeros, since some tokens
strip leading zero bytes). That is HPKE's ``dh``; the key schedule runs outside the HSM
(:mod:`hsm_signer.log.hpke`).

The derived value is a session object (not sensitive, extractable: see
:data:`DERIVED_SECRET_TEMPLATE`), read once and destroyed at once, so nothing piles up
on the token. Every call goes through the process lock of :class:`~.token.Hsm`.

The private key itself is never read: it is sensitive and never extractable.
"""

from __future__ import annotations

from typing import Any, Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ..errors import HsmError
from .keys import Token, _unwrap_octet_string, algorithm_of_key

DH_LENGTH = 32  # P-256 x-coordinate

#: The derived secret: a session object that may be read (it is HPKE's ``dh``, published
#: later only through the HPKE secret derived from it), never stored on the token.
DERIVED_SECRET_TEMPLATE = {
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
}


class BadPeerPointError(HsmError):
    """The HSM refused the peer point (not a point on P-256): the ballot cannot be opened."""


def check_peer_point(enc: bytes) -> bytes:
    """``enc`` as bytes if it is an uncompressed point on P-256, else :class:`BadPeerPointError`."""
    enc = bytes(enc)
    if len(enc) != 65 or enc[0] != 0x04:
        raise BadPeerPointError(f"the encapsulated key is not an uncompressed P-256 point ({len(enc)} bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), enc)
    except ValueError:
        raise BadPeerPointError("the encapsulated key is not a point on P-256") from None
    return enc


class HsmDeriver:
    """A derive-only P-256 key in the HSM, addressed by label."""

    def __init__(self, hsm: Token, label: str):
        self._hsm = hsm
        self._label = label
        hsm.require_mechanism(Mechanism.ECDH1_DERIVE, f"deriving with sealing key {label!r}")
        self._point = hsm.run(f"looking up sealing key {label!r}", self._describe)

    def _describe(self, session: Any) -> bytes:
        private = self._hsm.find_key(session, self._label, ObjectClass.PRIVATE_KEY)
        algorithm_of_key(private)  # refuses anything but P-256
        public = self._hsm.find_key(session, self._label, ObjectClass.PUBLIC_KEY)
        point = _unwrap_octet_string(bytes(public[Attribute.EC_POINT]))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        return point

    @property
    def key_id(self) -> str:
        return self._label

    @property
    def public_key(self) -> bytes:
        """The public key as an uncompressed SEC1 point (65 bytes), as HPKE uses it."""
        return self._point

    @property
    def public_key_der(self) -> bytes:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self._point)
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def derive(self, enc: bytes) -> bytes:
        """ECDH of the sealing key with the peer point ``enc``: 32 bytes."""
        enc = check_peer_point(enc)
        return self._hsm.run(f"deriving with sealing key {self._label!r}",
                             lambda s: self._derive_one(s, self._key(s), enc))

    def derive_many(self, encs: Iterable[bytes]) -> list[bytes | None]:
        """``derive`` of each point in one trip through the lock; ``None`` where the point is bad."""
        points: list[bytes | None] = []
        for enc in encs:
            try:
                points.append(check_peer_point(enc))
            except BadPeerPointError:
                points.append(None)

        def run(session: Any) -> list[bytes | None]:
            key = self._key(session)
            return [None if p is None else self._derive_one(session, key, p) for p in points]
        return self._hsm.run(f"deriving with sealing key {self._label!r}", run)

    def _key(self, session: Any) -> Any:
        return self._hsm.find_key(session, self._label, ObjectClass.PRIVATE_KEY)

    def _derive_one(self, session: Any, key: Any, enc: bytes) -> bytes:
        try:
            secret = key.derive_key(
                KeyType.GENERIC_SECRET, DH_LENGTH * 8, store=False,
                mechanism=Mechanism.ECDH1_DERIVE, mechanism_param=(KDF.NULL, None, enc),
                template=dict(DERIVED_SECRET_TEMPLATE))
        except (p11.ArgumentsBad, p11.MechanismParamInvalid, p11.DomainParamsInvalid) as exc:
            raise BadPeerPointError(f"the HSM refused the encapsulated key ({type(exc).__name__})") from None
        try:
            value = bytes(secret[Attribute.VALUE])
        finally:
            secret.destroy()
        if len(value) > DH_LENGTH:
            raise HsmError(f"sealing key {self._label!r} derived {len(value)} bytes, expected {DH_LENGTH}")
        return value.rjust(DH_LENGTH, b"\x00")
