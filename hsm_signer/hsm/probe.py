"""PKCS#11 operations only the key ceremony needs: changing the user PIN, and trying to get a
key out of the HSM to record that the token refuses.

The extraction attempts are evidence for the transcript: a key generated with
CKA_SENSITIVE=true and CKA_EXTRACTABLE=false must make C_GetAttributeValue(CKA_VALUE) and
C_WrapKey fail. Each attempt returns what happened (``"refused: <reason>"``) rather than
raising, so the ceremony can record the outcome and judge it.

This module must never return, log or record key material: if a token wrongly hands a
value out, only its length is reported. PINs are passed through to the token, never kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ..errors import HsmConfigError

if TYPE_CHECKING:
    from .token import Hsm

REFUSED = "refused"
LEAKED = "LEAKED"
NOT_ATTEMPTED = "not attempted"


def change_user_pin(hsm: "Hsm", old_pin: str, new_pin: str) -> None:
    """C_SetPIN on the logged-in session: replace the user PIN ``old_pin`` by ``new_pin``."""
    def change(session: Any) -> None:
        try:
            session.set_pin(old_pin, new_pin)
        except (p11.PinIncorrect, p11.PinInvalid):
            raise HsmConfigError(f"HSM token {hsm.token_name} refused to change the user PIN: the current PIN is wrong") from None
        except p11.PinLenRange:
            raise HsmConfigError(
                f"HSM token {hsm.token_name} does not accept a PIN of {len(new_pin)} characters; "
                "hsm-signer needs a token that accepts 32-character user PINs"
            ) from None
    hsm.change("changing the user PIN", change)


def _key_object(session: Any, label: str) -> Any:
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
        found = list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
        if found:
            return found[0]
    raise HsmConfigError(f"no private or secret key labelled {label!r}")


def try_read_value(hsm: "Hsm", label: str) -> str:
    """Try C_GetAttributeValue(CKA_VALUE) on key ``label``; describe the outcome."""
    def attempt(session: Any) -> str:
        key = _key_object(session, label)
        try:
            value = key[Attribute.VALUE]
        except (p11.AttributeSensitive, p11.AttributeTypeInvalid, p11.KeyUnextractable) as exc:
            return f"{REFUSED}: {type(exc).__name__}"
        return f"{LEAKED}: the token returned a {len(bytes(value))}-byte value"
    return hsm.run(f"trying to read the value of {label!r}", attempt)


def try_wrap_out(hsm: "Hsm", label: str) -> str:
    """Try C_WrapKey on key ``label`` with a fresh session AES key; describe the outcome.

    The wrapping key is a session object destroyed right after the attempt.
    """
    def attempt(session: Any) -> str:
        key = _key_object(session, label)
        try:
            wrapping = session.generate_key(KeyType.AES, 256, store=False, template={
                Attribute.WRAP: True, Attribute.ENCRYPT: True, Attribute.TOKEN: False,
            })
        except (p11.MechanismInvalid, p11.FunctionNotSupported, p11.TemplateInconsistent) as exc:
            return f"{NOT_ATTEMPTED}: no AES wrapping key could be made ({type(exc).__name__})"
        try:
            wrapped = wrapping.wrap_key(key, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        except (p11.KeyUnextractable, p11.KeyNotWrappable, p11.AttributeSensitive,
                p11.FunctionRejected) as exc:
            return f"{REFUSED}: {type(exc).__name__}"
        except (p11.MechanismInvalid, p11.FunctionNotSupported, p11.KeyTypeInconsistent) as exc:
            return f"{NOT_ATTEMPTED}: the token cannot wrap this key type with AES key wrap ({type(exc).__name__})"
        finally:
            wrapping.destroy()
        return f"{LEAKED}: the token wrapped the key out ({len(wrapped)} bytes)"
    return hsm.run(f"trying to wrap {label!r} out of the token", attempt)


_MECHANISMS_FOR = {
    "ecdsa-p256": (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA),
    "ed25519": (Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA),
    "hmac-sha256": (Mechanism.GENERIC_SECRET_KEY_GEN, Mechanism.SHA256_HMAC),
    "ecdh-p256": (Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDH1_DERIVE),
}


def require_mechanisms(hsm: "Hsm", algorithm: str, label: str) -> list[str]:
    """Check the token can generate and use a key of ``algorithm``; return the mechanism names.

    Raises :class:`~hsm_signer.errors.MechanismNotSupportedError` naming the missing one.
    """
    if algorithm not in _MECHANISMS_FOR:
        raise HsmConfigError(f"unknown key algorithm {algorithm!r}")
    names = []
    for mechanism in _MECHANISMS_FOR[algorithm]:
        hsm.require_mechanism(mechanism, f"the {algorithm} key {label!r}")
        names.append(f"CKM_{mechanism.name}")
    return names
