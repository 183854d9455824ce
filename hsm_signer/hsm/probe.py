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

from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from ..errors import HsmConfigError
from .readiness import wrap_attempts, wrapping_mechanisms_of
from .tokeninfo import TokenInfoError

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
    """Try C_WrapKey on key ``label`` with every wrapping mechanism the token flags CKF_WRAP,
    each with a fresh session wrapping key destroyed right after; describe the outcome.

    ``refused: …`` when at least one mechanism refused it as non-extractable and none
    wrapped it out; ``LEAKED: …`` when any did; ``not attempted: …`` when no mechanism could
    say either way (the token lists none, or none can wrap this key type).
    """
    try:
        wrapping = wrapping_mechanisms_of(hsm)
    except TokenInfoError as exc:
        return f"{NOT_ATTEMPTED}: the wrapping mechanisms could not be listed ({exc})"

    def attempt(session: Any) -> str:
        outcome = wrap_attempts(session, _key_object(session, label), wrapping)
        if outcome.leaked:
            return f"{LEAKED}: {outcome.describe()}"
        if outcome.refused:
            return f"{REFUSED}: {outcome.describe()}"
        return f"{NOT_ATTEMPTED}: {outcome.describe()}"
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
