"""Creating, inspecting and destroying keys inside the HSM (used by the key ceremony).

python-pkcs11's defaults are unsafe for this job (keys are session objects and not
marked non-extractable unless asked), so every template here is spelled out: token
objects, private, sensitive, never extractable, and usable only for what they are for.
Nothing here can read secret values: the ceremony proves that by trying and failing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from ..errors import HsmConfigError
from ..signer import ECDSA_P256, ED25519

if TYPE_CHECKING:
    from .deriver import HsmDeriver
    from .keys import HsmMac, HsmSigner
    from .token import Hsm

_ED25519_PARAMS = bytes.fromhex("06032b6570")  # OID 1.3.101.112, the RFC 8410 form

#: Attributes the ceremony reads back and records for each key.
RECORDED_ATTRIBUTES = {
    "token": Attribute.TOKEN,
    "private": Attribute.PRIVATE,
    "sensitive": Attribute.SENSITIVE,
    "extractable": Attribute.EXTRACTABLE,
    "local": Attribute.LOCAL,
    "always_sensitive": Attribute.ALWAYS_SENSITIVE,
    "never_extractable": Attribute.NEVER_EXTRACTABLE,
    "sign": Attribute.SIGN,
    "decrypt": Attribute.DECRYPT,
    "unwrap": Attribute.UNWRAP,
    "derive": Attribute.DERIVE,
}

#: The templates of the ceremony's keys; ``hsm check`` makes its throwaway session keys
#: from these very dicts (with CKA_TOKEN false), so it judges the keys the ceremony makes.
SIGNING_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
SIGNING_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
    Attribute.DERIVE: False,
}

#: The sealing key (sealed ballots): EC P-256 usable ONLY for CKM_ECDH1_DERIVE.
#: Shared by the ceremony, ``hsm check`` and the tests so they all judge the same key.
SEALING_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: False,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: True,
}
SEALING_PUBLIC_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: False,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
    Attribute.DERIVE: False,
}
#: The code-hmac key: a 256-bit generic secret for CKM_SHA256_HMAC only.
MAC_TEMPLATE = {
    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.VERIFY: True,
    Attribute.ENCRYPT: False, Attribute.DECRYPT: False, Attribute.WRAP: False,
    Attribute.UNWRAP: False, Attribute.DERIVE: False,
}


def _refuse_existing(hsm: "Hsm", label: str) -> None:
    if hsm.key_exists(label):
        raise HsmConfigError(
            f"an object labelled {label!r} already exists on HSM token {hsm.token_name}; "
            "choose a new label (labels are never reused) or retire the old key first"
        )


def keypair_spec(algorithm: str) -> tuple[KeyType, bytes, Mechanism]:
    """Key type, CKA_EC_PARAMS and generation mechanism of a signing ``algorithm``."""
    if algorithm == ECDSA_P256:
        return KeyType.EC, encode_named_curve_parameters("secp256r1"), Mechanism.EC_KEY_PAIR_GEN
    if algorithm == ED25519:
        return KeyType.EC_EDWARDS, _ED25519_PARAMS, Mechanism.EC_EDWARDS_KEY_PAIR_GEN
    raise HsmConfigError(f"unknown signing algorithm {algorithm!r}; use {ECDSA_P256} or {ED25519}")


def generate_signing_key(hsm: "Hsm", label: str, key_id: bytes, algorithm: str = ECDSA_P256) -> "HsmSigner":
    """Generate a token key pair for ``algorithm`` and return its signer."""
    _refuse_existing(hsm, label)
    key_type, params, mechanism = keypair_spec(algorithm)
    hsm.require_mechanism(mechanism, f"generating {algorithm} key {label!r}")
    hsm.require_mechanism(Mechanism.EDDSA if algorithm == ED25519 else Mechanism.ECDSA, f"signing with {label!r}")

    def generate(session: Any) -> None:
        domain = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: params}, local=True)
        domain.generate_keypair(
            mechanism=mechanism, store=True, label=label, id=key_id,
            public_template=dict(SIGNING_PUBLIC_TEMPLATE), private_template=dict(SIGNING_PRIVATE_TEMPLATE),
        )
    hsm.change(f"generating key {label!r}", generate)
    return hsm.signer(label)


def generate_sealing_key(hsm: "Hsm", label: str, key_id: bytes, *, store: bool = True) -> "HsmDeriver":
    """Generate the derive-only P-256 sealing key pair (token objects unless ``store`` is false)."""
    _refuse_existing(hsm, label)
    hsm.require_mechanism(Mechanism.EC_KEY_PAIR_GEN, f"generating sealing key {label!r}")
    hsm.require_mechanism(Mechanism.ECDH1_DERIVE, f"opening ballots with sealing key {label!r}")
    private_template = dict(SEALING_PRIVATE_TEMPLATE)
    public_template = dict(SEALING_PUBLIC_TEMPLATE)
    if not store:
        private_template[Attribute.TOKEN] = public_template[Attribute.TOKEN] = False

    def generate(session: Any) -> None:
        domain = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True)
        domain.generate_keypair(
            mechanism=Mechanism.EC_KEY_PAIR_GEN, store=store, label=label, id=key_id,
            public_template=public_template, private_template=private_template,
        )
    hsm.change(f"generating sealing key {label!r}", generate)
    return hsm.deriver(label)


def generate_mac_key(hsm: "Hsm", label: str, key_id: bytes) -> "HsmMac":
    """Generate a 256-bit HMAC-SHA256 secret key that never leaves the HSM."""
    _refuse_existing(hsm, label)
    hsm.require_mechanism(Mechanism.GENERIC_SECRET_KEY_GEN, f"generating {label!r}")

    def generate(session: Any) -> None:
        session.generate_key(
            KeyType.GENERIC_SECRET, 256, store=True, label=label, id=key_id,
            template=dict(MAC_TEMPLATE),
        )
    hsm.change(f"generating key {label!r}", generate)
    return hsm.mac(label)


def import_mac_key_for_tests(hsm: "Hsm", label: str, secret: bytes) -> "HsmMac":
    """Import a known HMAC secret. Only for tests that compare with :mod:`hmac`."""
    _refuse_existing(hsm, label)

    def create(session: Any) -> None:
        session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
            Attribute.VALUE: secret, Attribute.LABEL: label, Attribute.TOKEN: True,
            Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.SIGN: True,
            Attribute.VERIFY: True,
        })
    hsm.change(f"importing test key {label!r}", create)
    return hsm.mac(label)


def key_attributes(hsm: "Hsm", label: str) -> dict[str, Any]:
    """The security attributes of the private or secret key ``label``, plus its id."""
    def read(session: Any) -> dict[str, Any]:
        objects = [o for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY)
                   for o in session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label})]
        if len(objects) != 1:
            raise HsmConfigError(f"expected one key labelled {label!r} on HSM token {hsm.token_name}, found {len(objects)}")
        obj = objects[0]
        found: dict[str, Any] = {"class": ObjectClass(obj[Attribute.CLASS]).name.lower(), "id": bytes(obj[Attribute.ID]).hex()}
        for name, attribute in RECORDED_ATTRIBUTES.items():
            try:
                found[name] = bool(obj[attribute])
            except Exception:  # an attribute the key type does not have (e.g. unwrap on some tokens)
                found[name] = None
        return found
    return hsm.run(f"reading attributes of {label!r}", read)


def destroy_key(hsm: "Hsm", label: str) -> int:
    """Destroy every object (private, public, secret) labelled ``label``; return how many."""
    def destroy(session: Any) -> int:
        objects = list(session.get_objects({Attribute.LABEL: label}))
        for obj in objects:
            obj.destroy()
        return len(objects)
    count = hsm.change(f"destroying key {label!r}", destroy)
    hsm.forget_key_handles()
    return count
