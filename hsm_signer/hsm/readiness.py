"""Is this token fit for the ceremony? A readiness report that changes nothing on the token.

``hsm-signer hsm check`` and the ceremony's preflight call :func:`check_token` before any
PIN is set or key made. Everything it makes is a **session object** (CKA_TOKEN false),
generated from the ceremony's own templates (:mod:`.manage`), and destroyed when the
check ends: the token holds exactly what it held before. For each key the ceremony will
make it checks that the token offers the mechanisms, that a throwaway key reads back
CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, that reading CKA_VALUE is refused
and that wrapping it out is refused with **every** wrapping mechanism the token lists,
and that the key works (sign-verify, HMAC, ECDH derive against ``cryptography``). It
also checks login and sessions, and that the token accepts a user PIN as long as the one
the ceremony splits (``ulMaxPinLen`` of C_GetTokenInfo).

Each finding is a :class:`Check` (what, result, what to do). Nothing here may log, return
or record key material: a token that hands a value out is reported by its length only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import KDF, MGF, Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import CTRParams, GCMParams

from ..errors import HsmError, VerificationError
from ..signer import ECDSA_P256, ED25519, verify_signature
from .faults import describe, return_code, serial_is_ambiguous
from .keys import _raw_to_der, _unwrap_octet_string, public_key_der
from .manage import (
    MAC_TEMPLATE, SEALING_PRIVATE_TEMPLATE, SEALING_PUBLIC_TEMPLATE, SIGNING_PRIVATE_TEMPLATE,
    SIGNING_PUBLIC_TEMPLATE, keypair_spec,
)
from .tokeninfo import TokenInfoError, pin_limits, wrapping_mechanisms

if TYPE_CHECKING:
    from .token import Hsm

HMAC_SHA256 = "hmac-sha256"
ECDH_P256 = "ecdh-p256"

OK, FAIL, WARN, SKIPPED = "ok", "FAIL", "warn", "skipped"

#: What each algorithm needs: (mechanism, what it is for). The first generates the key.
MECHANISMS = {
    ECDSA_P256: ((Mechanism.EC_KEY_PAIR_GEN, "generate"), (Mechanism.ECDSA, "sign")),
    ED25519: ((Mechanism.EC_EDWARDS_KEY_PAIR_GEN, "generate"), (Mechanism.EDDSA, "sign")),
    HMAC_SHA256: ((Mechanism.GENERIC_SECRET_KEY_GEN, "generate"), (Mechanism.SHA256_HMAC, "MAC")),
    ECDH_P256: ((Mechanism.EC_KEY_PAIR_GEN, "generate"), (Mechanism.ECDH1_DERIVE, "derive")),
}

#: The derived ECDH secret of the self-test: a readable session object (as the sealing
#: key's real derivations make), destroyed at once.
_DERIVED_TEMPLATE = {Attribute.TOKEN: False, Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}
_MUST_BE_TRUE = {"CKA_LOCAL": Attribute.LOCAL, "CKA_ALWAYS_SENSITIVE": Attribute.ALWAYS_SENSITIVE,
                 "CKA_NEVER_EXTRACTABLE": Attribute.NEVER_EXTRACTABLE, "CKA_SENSITIVE": Attribute.SENSITIVE}
_REFUSALS = (p11.KeyUnextractable, p11.KeyNotWrappable, p11.AttributeSensitive, p11.FunctionRejected)
# The mechanism cannot wrap a key of this type at all (AES-ECB and an EC private key): the
# key stays in, as with a refusal, but the token said nothing about extractability.
_NOT_APPLICABLE = (p11.MechanismInvalid, p11.KeyTypeInconsistent, p11.WrappingKeyTypeInconsistent,
                   p11.KeySizeRange, p11.DataLenRange, p11.FunctionNotSupported)


@dataclass(frozen=True)
class KeyNeed:
    """A key the configuration will make or use: its label, purpose and algorithm."""

    label: str
    purpose: str
    algorithm: str

    @property
    def name(self) -> str:
        return f"{self.purpose} key {self.label!r} ({self.algorithm})"


@dataclass(frozen=True)
class Check:
    """One finding: ``result`` is ok, FAIL, warn or skipped; ``advice`` says what to do."""

    name: str
    result: str
    detail: str
    advice: str = ""


@dataclass(frozen=True)
class ReadinessReport:
    token: dict[str, Any]
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def fit(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.result == FAIL]

    def reasons(self) -> str:
        """The failures in one line, for an error message."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_dict(self) -> dict[str, Any]:
        return {"fit": self.fit, "token": self.token,
                "checks": [{"check": c.name, "result": c.result, "detail": c.detail, "advice": c.advice}
                           for c in self.checks]}

    def table(self) -> str:
        """The report as a plain-text table: check, result, what to do."""
        rows = [("CHECK", "RESULT", "DETAIL / WHAT TO DO")]
        for c in self.checks:
            rows.append((c.name, c.result, c.detail + (f" -> {c.advice}" if c.advice else "")))
        width = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
        verdict = ("READY: every check passed" if self.fit
                   else f"NOT READY: {len(self.failures)} check(s) failed: {self.reasons()}")
        return "\n".join(lines + ["", verdict])


def check_token(hsm: "Hsm", needs: list[KeyNeed], *, pin_length: int | None = None) -> ReadinessReport:
    """Run every check on the open token ``hsm`` for the keys ``needs``; change nothing.

    ``pin_length`` is the length of the user PIN the ceremony will set (None: not asked).
    """
    info = hsm.token_info()
    checks: list[Check] = [_token_check(info)]
    checks += hsm.run("checking login and sessions", _session_checks)
    if pin_length is not None:
        checks.append(_pin_check(hsm, pin_length))
    offered = hsm.mechanisms()
    try:
        wrapping = wrapping_mechanisms_of(hsm)
    except TokenInfoError as exc:
        wrapping = []
        checks.append(Check("wrapping mechanisms", WARN, f"could not list them ({exc})",
                            "ask the vendor which mechanisms can wrap keys and whether they honour CKA_EXTRACTABLE"))
    for need in needs:
        missing = [(m, use) for m, use in MECHANISMS[need.algorithm] if m not in offered]
        checks.append(_mechanism_check(need, missing))
        if missing:
            checks.append(Check(f"{need.label}: throwaway key", SKIPPED,
                                "not tried: the token lacks a mechanism this key needs"))
            continue
        checks += hsm.run(f"checking a throwaway {need.algorithm} key", partial(_key_checks, need=need, wrapping=wrapping))
    return ReadinessReport(token=info, checks=tuple(checks))


# --- token, login, PIN ------------------------------------------------------------------------
def _token_check(info: dict[str, Any]) -> Check:
    detail = (f"{info['label']!r}, {info['manufacturer']} {info['model']}, serial {info['serial'] or '(blank)'}; "
              f"module {info['module_description']} {info['module_version']}")
    if serial_is_ambiguous(info["serial"]):
        return Check("token", WARN, detail + "; the serial does not identify the token",
                     "choose the token by hsm.token_label (not hsm.token_serial) and give it a unique label")
    return Check("token", OK, detail)


def _session_checks(session: Any) -> list[Check]:
    flags = session.token.flags
    checks = []
    if TokenFlag.USER_PIN_LOCKED in flags:
        checks.append(Check("user PIN", FAIL, "the user PIN is locked", "the security officer must reset it"))
    elif TokenFlag.USER_PIN_FINAL_TRY in flags or TokenFlag.USER_PIN_COUNT_LOW in flags:
        checks.append(Check("user PIN", WARN, "the token counted wrong PINs recently (count low or final try)",
                            "find out who typed a wrong PIN before the ceremony; one more may lock the token"))
    if TokenFlag.LOGIN_REQUIRED not in flags:
        checks.append(Check("login", WARN, "the token does not require a login (CKF_LOGIN_REQUIRED unset)",
                            "ask the vendor: keys on it may be usable without the split PIN"))
    # PKCS#11 login state belongs to the application: a second session must see it and be
    # able to use private objects, as the service's reconnections rely on.
    try:
        second = session.token.open(rw=False)
    except p11.PKCS11Error as exc:
        checks.append(Check("login and sessions", FAIL, f"a second session could not be opened: {describe(exc)}",
                            "the service reconnects through new sessions: ask the vendor about session limits"))
        return checks
    try:
        list(second.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))  # private objects: needs the login
        random = second.generate_random(256)
        if len(random) != 32 or random == bytes(32):
            checks.append(Check("random", FAIL, "C_GenerateRandom returned no usable bytes", "ask the vendor"))
    finally:
        second.close()
    checks.append(Check("login and sessions", OK,
                        "logged in read-write; a second session shares the login; C_GenerateRandom works"))
    return checks


def _pin_check(hsm: "Hsm", pin_length: int) -> Check:
    name = "user PIN length"
    try:
        slot_id = hsm.run("reading the slot", lambda s: s.token.slot.slot_id)
        limits = hsm.run("reading C_GetTokenInfo", lambda s: pin_limits(hsm.module_path, slot_id))
    except (TokenInfoError, HsmError) as exc:
        return Check(name, WARN, f"could not read the PIN limits ({exc})",
                     f"ask the vendor whether the token accepts a {pin_length}-character user PIN")
    accepted = limits.accepts(pin_length)
    span = f"{limits.min_length if limits.min_length is not None else '?'}–{limits.max_length}"
    if accepted is None:
        return Check(name, WARN, "the token does not state its maximum PIN length",
                     f"ask the vendor whether it accepts a {pin_length}-character user PIN")
    if not accepted:
        return Check(name, FAIL, f"the token accepts user PINs of {span} characters; the ceremony sets a "
                     f"{pin_length}-character PIN (split among the share holders)",
                     f"use a token (or token policy) that accepts {pin_length}-character user PINs")
    return Check(name, OK, f"accepts {span} characters; the ceremony's PIN has {pin_length}")


def _mechanism_check(need: KeyNeed, missing: list[tuple[Mechanism, str]]) -> Check:
    name = f"{need.label}: mechanisms"
    wanted = ", ".join(f"CKM_{m.name}" for m, _ in MECHANISMS[need.algorithm])
    if not missing:
        return Check(name, OK, f"offers {wanted}")
    lacks = ", ".join(f"CKM_{m.name} (to {use})" for m, use in missing)
    if need.algorithm == HMAC_SHA256:
        advice = ("the code key is an HMAC-SHA256 secret made in the HSM; there is no other algorithm for it: "
                  "use a token that generates generic secret keys and computes HMAC-SHA256")
    elif need.algorithm == ED25519:
        advice = f"use a token that offers CKM_EDDSA (or choose algorithm = \"{ECDSA_P256}\" for this key)"
    else:
        advice = "use a token (or firmware/licence) that offers it; see docs/HSM.md"
    return Check(name, FAIL, f"the {need.purpose} key needs {wanted}; the token lacks {lacks}", advice)


# --- one throwaway key ----------------------------------------------------------------------------
def _session_template(template: dict) -> dict:
    return {**template, Attribute.TOKEN: False}


def _throwaway(session: Any, need: KeyNeed) -> tuple[Any, Any]:
    """A session key (private or secret, public or None) made from the ceremony's template."""
    label = f"hsm-check-{secrets.token_hex(4)}"
    if need.algorithm == HMAC_SHA256:
        key = session.generate_key(KeyType.GENERIC_SECRET, 256, store=False, label=label,
                                   template=_session_template(MAC_TEMPLATE))
        return key, None
    if need.algorithm == ECDH_P256:
        key_type, params, mechanism = keypair_spec(ECDSA_P256)
        private_t, public_t = SEALING_PRIVATE_TEMPLATE, SEALING_PUBLIC_TEMPLATE
    else:
        key_type, params, mechanism = keypair_spec(need.algorithm)
        private_t, public_t = SIGNING_PRIVATE_TEMPLATE, SIGNING_PUBLIC_TEMPLATE
    domain = session.create_domain_parameters(key_type, {Attribute.EC_PARAMS: params}, local=True)
    public, private = domain.generate_keypair(
        mechanism=mechanism, store=False, label=label,
        public_template=_session_template(public_t), private_template=_session_template(private_t))
    return private, public


def _key_checks(session: Any, need: KeyNeed, wrapping: list[Mechanism]) -> list[Check]:
    prefix = need.label
    try:
        key, public = _throwaway(session, need)
    except p11.PKCS11Error as exc:
        return [Check(f"{prefix}: throwaway key", FAIL,
                      f"generating a session key from the ceremony's template failed: {describe(exc)}",
                      "the ceremony would fail the same way: ask the vendor what this return code means "
                      "for these attributes (token=false here, true in the ceremony)")]
    try:
        checks = [Check(f"{prefix}: throwaway key", OK, "made from the ceremony's template as a session object")]
        checks.append(_attribute_check(prefix, key))
        checks.append(_value_check(prefix, key))
        checks.append(_wrap_check(session, prefix, key, wrapping))
        checks.append(_self_test(session, need, key, public))
        return checks
    finally:
        for obj in (key, public):
            if obj is not None:
                try:
                    obj.destroy()
                except p11.PKCS11Error:
                    pass  # a session object dies with its session anyway


def _attribute_check(prefix: str, key: Any) -> Check:
    wrong = []
    for name, attribute in _MUST_BE_TRUE.items():
        try:
            if not bool(key[attribute]):
                wrong.append(f"{name} false")
        except p11.PKCS11Error as exc:
            wrong.append(f"{name} unreadable ({return_code(exc) or type(exc).__name__})")
    try:
        if bool(key[Attribute.EXTRACTABLE]):
            wrong.append("CKA_EXTRACTABLE true")
    except p11.PKCS11Error:
        pass
    if wrong:
        return Check(f"{prefix}: attributes", FAIL, "; ".join(wrong),
                     "a key whose origin or secrecy the token cannot vouch for cannot be recorded as "
                     "generated-in-HSM and never extractable: do not use this token")
    return Check(f"{prefix}: attributes", OK, "CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, "
                 "CKA_SENSITIVE true; CKA_EXTRACTABLE false")


def _value_check(prefix: str, key: Any) -> Check:
    try:
        value = key[Attribute.VALUE]
    except (p11.AttributeSensitive, p11.AttributeTypeInvalid, p11.KeyUnextractable) as exc:
        return Check(f"{prefix}: read CKA_VALUE", OK, f"refused ({return_code(exc)})")
    except p11.PKCS11Error as exc:
        return Check(f"{prefix}: read CKA_VALUE", OK, f"refused ({describe(exc)})")
    return Check(f"{prefix}: read CKA_VALUE", FAIL, f"LEAKED: the token returned a {len(bytes(value))}-byte value",
                 "do not use this token: it hands out the value of sensitive keys")


def wrapping_mechanisms_of(hsm: "Hsm") -> list[Mechanism]:
    """Every mechanism the token flags CKF_WRAP (asked through ctypes: see :mod:`.tokeninfo`)."""
    slot_id = hsm.run("reading the slot", lambda s: s.token.slot.slot_id)
    values = hsm.run("listing wrapping mechanisms", lambda s: wrapping_mechanisms(hsm.module_path, slot_id))
    found = []
    for value in values:
        try:
            found.append(Mechanism(value))
        except ValueError:
            continue  # a vendor mechanism python-pkcs11 cannot drive: reported by the caller
    return found


def _wrapping_key(session: Any, mechanism: Mechanism) -> tuple[Any, Any, Any]:
    """(key to wrap with, key to destroy afterwards, mechanism parameter) for ``mechanism``."""
    name = mechanism.name.lstrip("_")
    template = {Attribute.TOKEN: False, Attribute.WRAP: True, Attribute.ENCRYPT: True}
    if name.startswith("AES_"):
        key = session.generate_key(KeyType.AES, 256, store=False, template=template)
        if name == "AES_GCM":
            return key, key, GCMParams(os.urandom(12))
        if name == "AES_CTR":
            return key, key, CTRParams(os.urandom(8))
        return key, key, (os.urandom(16) if "CBC" in name else None)
    if name.startswith("DES3_"):
        key = session.generate_key(KeyType.DES3, store=False, template=template)
        return key, key, (os.urandom(8) if "CBC" in name else None)
    if name.startswith("DES_"):
        # Single DES: python-pkcs11 cannot ask C_GenerateKey for one; a random session key will do.
        key = session.create_object({**template, Attribute.CLASS: ObjectClass.SECRET_KEY,
                                     Attribute.KEY_TYPE: KeyType._DES, Attribute.VALUE: os.urandom(8)})
        return key, key, (os.urandom(8) if "CBC" in name else None)
    if name.startswith("RSA_"):
        public, private = session.generate_keypair(
            KeyType.RSA, 2048, store=False, public_template={Attribute.TOKEN: False, Attribute.WRAP: True},
            private_template={Attribute.TOKEN: False})
        param = (Mechanism.SHA_1, MGF.SHA1, None) if "OAEP" in name else None
        return public, (public, private), param
    raise LookupError(name)


@dataclass(frozen=True)
class WrapOutcome:
    """What C_WrapKey did with each wrapping mechanism (``"CKM_X: CKR_Y"`` strings)."""

    tried: int
    refused: tuple[str, ...] = ()
    unable: tuple[str, ...] = ()
    leaked: tuple[str, ...] = ()
    inconclusive: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.leaked:
            return f"the token wrapped the non-extractable key out with {', '.join(self.leaked)}"
        if not self.tried:
            return "the token lists no wrapping mechanism"
        text = (f"refused as non-extractable by {len(self.refused)} of {self.tried} wrapping mechanisms "
                f"({', '.join(r.split(':')[0] for r in self.refused) or 'none'})")
        if self.unable:
            text += f"; {len(self.unable)} cannot wrap this key type ({', '.join(self.unable)})"
        if self.inconclusive:
            text += f"; not conclusive for {', '.join(self.inconclusive)}"
        return text


def wrap_attempts(session: Any, key: Any, wrapping: list[Mechanism]) -> WrapOutcome:
    """Try C_WrapKey on ``key`` with each of ``wrapping``, each with a fresh session wrapping
    key (destroyed after); only lengths of anything wrapped out are kept."""
    refused, unable, leaked, inconclusive = [], [], [], []
    for mechanism in wrapping:
        label = f"CKM_{mechanism.name.lstrip('_')}"
        try:
            wrapper, made, param = _wrapping_key(session, mechanism)
        except LookupError:
            inconclusive.append(f"{label} (no wrapping key of its type is made by hsm check)")
            continue
        except p11.PKCS11Error as exc:
            inconclusive.append(f"{label} (no wrapping key: {return_code(exc) or type(exc).__name__})")
            continue
        try:
            wrapped = wrapper.wrap_key(key, mechanism=mechanism, mechanism_param=param)
            leaked.append(f"{label} ({len(wrapped)} bytes)")
        except _REFUSALS as exc:
            refused.append(f"{label}: {return_code(exc)}")
        except _NOT_APPLICABLE as exc:
            unable.append(f"{label}: {return_code(exc)}")
        except p11.PKCS11Error as exc:
            inconclusive.append(f"{label} ({return_code(exc) or type(exc).__name__})")
        except (TypeError, ValueError, NotImplementedError):
            inconclusive.append(f"{label} (its parameters are not built by hsm check)")
        finally:
            for obj in made if isinstance(made, tuple) else (made,):
                try:
                    obj.destroy()
                except p11.PKCS11Error:
                    pass
    return WrapOutcome(len(wrapping), tuple(refused), tuple(unable), tuple(leaked), tuple(inconclusive))


def _wrap_check(session: Any, prefix: str, key: Any, wrapping: list[Mechanism]) -> Check:
    name = f"{prefix}: wrap out"
    outcome = wrap_attempts(session, key, wrapping)
    if outcome.leaked:
        return Check(name, FAIL, f"LEAKED: {outcome.describe()}",
                     "do not use this token: keys marked never-extractable leave it")
    if outcome.tried and not outcome.refused:
        return Check(name, WARN, f"{outcome.describe()}; no mechanism said the key is non-extractable",
                     "ask the vendor how the token enforces CKA_EXTRACTABLE false on C_WrapKey")
    if outcome.inconclusive:
        return Check(name, WARN, outcome.describe(),
                     "ask the vendor whether these mechanisms can wrap out keys marked non-extractable")
    return Check(name, OK, outcome.describe())


def _self_test(session: Any, need: KeyNeed, key: Any, public: Any) -> Check:
    name = f"{need.label}: self-test"
    test: Callable[[], str] = {
        ECDSA_P256: lambda: _sign_verify(key, public, ECDSA_P256),
        ED25519: lambda: _sign_verify(key, public, ED25519),
        HMAC_SHA256: lambda: _mac_test(key),
        ECDH_P256: lambda: _derive_test(key, public),
    }[need.algorithm]
    try:
        return Check(name, OK, test())
    except p11.PKCS11Error as exc:
        return Check(name, FAIL, f"the operation failed: {describe(exc)}", "ask the vendor; the service would fail too")
    except (VerificationError, ValueError) as exc:
        return Check(name, FAIL, f"wrong result: {exc}", "do not use this token: it computes wrong results")


def _sign_verify(key: Any, public: Any, algorithm: str) -> str:
    message = b"hsm-signer hsm check " + os.urandom(16)
    if algorithm == ED25519:
        signature = key.sign(message, mechanism=Mechanism.EDDSA)
    else:
        signature = _raw_to_der(key.sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA))
    der = public_key_der(public)
    verify_signature(der, message, signature)
    try:
        verify_signature(der, message + b"!", signature)
    except VerificationError:
        return "signed in the HSM; the signature verifies with cryptography and not for other data"
    raise ValueError("a signature verified for data it was not made for")


def _mac_test(key: Any) -> str:
    data = os.urandom(32)
    first, second, other = (key.sign(d, mechanism=Mechanism.SHA256_HMAC) for d in (data, data, data + b"\0"))
    if not (len(first) == 32 and hmac.compare_digest(first, second) and first != other):
        raise ValueError("HMAC-SHA256 did not give 32 bytes, the same twice, different for other data")
    return "HMAC-SHA256 gives 32 bytes, the same twice, different for other data"


def _derive_test(key: Any, public: Any) -> str:
    point = _unwrap_octet_string(bytes(public[Attribute.EC_POINT]))
    hsm_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    peer = ec.generate_private_key(ec.SECP256R1())
    peer_point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    secret = key.derive_key(KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.ECDH1_DERIVE,
                            mechanism_param=(KDF.NULL, None, peer_point), template=dict(_DERIVED_TEMPLATE))
    try:
        value = bytes(secret[Attribute.VALUE]).rjust(32, b"\0")
    finally:
        secret.destroy()
    if not hmac.compare_digest(value, peer.exchange(ec.ECDH(), hsm_public)):
        raise ValueError("the ECDH secret derived in the HSM differs from cryptography's")
    return "CKM_ECDH1_DERIVE (CKD_NULL) gives the same secret as cryptography's ECDH"


# --- the keys a service already has (``hsm-signer health``) ------------------------------------
@dataclass(frozen=True)
class ConfiguredKey:
    """A key of the published bundle: what it is and its published public key (None for HMAC)."""

    need: KeyNeed
    public_key_der: bytes | None = None


def exercise_keys(hsm: "Hsm", keys: list[ConfiguredKey]) -> list[Check]:
    """Make every configured key do its job once through this module; change nothing.

    A signing key signs a fresh message, verified against the *published* public key; the
    code key MACs; the sealing key derives with a fresh peer and matches cryptography. A
    mechanism the module does not offer (CKM_EDDSA through the p11-kit client) is named
    with the key that needs it, so it is found before the poll opens, not at the tally.
    """
    offered = hsm.mechanisms()
    checks = []
    for key in keys:
        need = key.need
        mechanism = MECHANISMS[need.algorithm][1][0]
        name = f"{need.purpose} key {need.label!r}"
        if mechanism not in offered:
            checks.append(Check(name, FAIL, f"the token, through {hsm.module_path}, does not offer CKM_{mechanism.name}, "
                                f"needed to use this {need.algorithm} key",
                                "use a module/token that offers it (the p11-kit client offers no CKM_EDDSA); "
                                "see docs/HSM.md"))
            continue
        try:
            checks.append(Check(name, OK, _exercise(hsm, key)))
        except VerificationError as exc:
            checks.append(Check(name, FAIL, f"wrong result: {exc}",
                                "the key on the token is not the one the bundle publishes, or the token computes wrong results"))
        except HsmError as exc:
            checks.append(Check(name, FAIL, str(exc), "fix the configuration or the token, then run health again"))
    return checks


def _exercise(hsm: "Hsm", key: ConfiguredKey) -> str:
    need = key.need
    if need.algorithm == HMAC_SHA256:
        mac = hsm.mac(need.label)
        data = os.urandom(32)
        first, second, other = mac.mac(data), mac.mac(data), mac.mac(data + b"\0")
        if not (len(first) == 32 and first == second and first != other):
            raise VerificationError("HMAC-SHA256 did not give 32 bytes, the same twice, different for other data")
        return "HMAC-SHA256 computed in the HSM (32 bytes, deterministic)"
    if key.public_key_der is None:
        raise VerificationError("the bundle publishes no public key for it")
    published = serialization.load_der_public_key(key.public_key_der)
    if need.algorithm == ECDH_P256:
        peer = ec.generate_private_key(ec.SECP256R1())
        point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

        def derive(session: Any) -> bytes:
            private = hsm.find_key(session, need.label, ObjectClass.PRIVATE_KEY)
            secret = private.derive_key(KeyType.GENERIC_SECRET, 256, store=False, mechanism=Mechanism.ECDH1_DERIVE,
                                        mechanism_param=(KDF.NULL, None, point), template=dict(_DERIVED_TEMPLATE))
            try:
                return bytes(secret[Attribute.VALUE]).rjust(32, b"\0")
            finally:
                secret.destroy()
        value = hsm.run(f"deriving with key {need.label!r}", derive)
        if not isinstance(published, ec.EllipticCurvePublicKey) or value != peer.exchange(ec.ECDH(), published):
            raise VerificationError("the secret derived in the HSM does not match the published sealing key")
        return "ECDH derive in the HSM matches the published public key"
    message = b"hsm-signer health " + os.urandom(16)
    signature = hsm.signer(need.label).sign(message)
    verify_signature(key.public_key_der, message, signature)
    return "signed in the HSM; verifies with the published public key"
